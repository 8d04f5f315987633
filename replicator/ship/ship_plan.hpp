#pragma once
// Deciding, for a window of journal records read together, what each one
// needs to send. Pure: no I/O, so it is tested on its own.
//
// Rules (every skipped record's LSN is still covered by the next commit):
//  - A file created and deleted again within the window (no link or rename
//    of it in between) is skipped entirely, except the unlink itself.
//  - Range writes to one file with no namespace change of it in between are
//    merged into the last of them (data is read at ship time anyway), closes
//    in between included.
//  - close_write of a file created in the window sends its whole content
//    (atomically), and the create is skipped when nothing but data happened
//    to the file in between (the content makes the file, with its
//    attributes); after a write with unknown ranges, the blocks that
//    differ from the server's copy; otherwise only size and attributes,
//    and then an earlier such close of the file is skipped (both read them
//    at ship time). Writes it covers are skipped.
//  - A write with unknown ranges not followed by close_write in the window
//    sends the differing blocks in place.
//  - Agent events (start, stop, overflow, rescan) send nothing.
//  - conflict re-sends the file's content (differing blocks).
//  - repair travels as it is, before the records that make the repair.
// Data of a file deleted later is dropped at ship time, when the file can no
// longer be opened by its handle: deciding it here could lose the content
// of other hard links to it.
//
// A record skipped because a later one carries its effect (a create or
// writes the whole content at close makes, writes merged into a later
// write, a close whose attributes a later close reads again) opens a span
// that this later record closes. No record inside such a span is a point a
// server may resume after: resumed there, the agent plans anew from the
// next record, without the skipped one, and the carrier no longer carries
// it (a close without its create in the window only sets the size, and the
// file the create should have made is never filled). `boundary` says where
// a server may resume: commits name only such LSNs, and an operation sent
// from inside a span tells the server it is no resume point. A record
// skipped because its file vanished in the window opens no span: whatever
// is resumed there, the file's end removes it again.
#include <vector>

#include "journal/record.hpp"

namespace iz::replicator {

enum class ShipAction {
    skip,
    send,           // the record as it is (write: its ranges, possibly merged)
    content_full,   // close_write: whole content, atomically
    content_delta,  // close_write or conflict: differing blocks, atomically
    close_attrs,    // close_write: size and attributes only
    write_delta,    // write with unknown ranges: differing blocks in place
};

struct PlannedRecord {
    ShipAction action = ShipAction::send;
    // write: the ranges to send (merged); empty means the whole file.
    std::vector<journal::ByteRange> ranges;
    // A server may resume after this record (see above).
    bool boundary = true;
};

std::vector<PlannedRecord> plan_window(const std::vector<journal::Record>& window);

}  // namespace iz::replicator
