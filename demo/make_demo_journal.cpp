// Writes a small journal of plausible activity, for trying izlog before (or
// without) watching a real directory: `iz-demo-journal DIR`.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ctime>

#include "journal/writer.hpp"

using iz::journal::Op;
using iz::journal::Record;

int main(int argc, char** argv) {
    // A real command line: `--help` (or any option) is never taken for the
    // directory to write a journal into.
    CLI::App app{"iz-demo-journal: writes a small journal of plausible activity into DIR, to try izlog on "
                 "(izlog -D DIR)"};
    std::string dir;
    app.add_option("DIR", dir, "journal directory to write into (made if missing)")
        ->required();
    CLI11_PARSE(app, argc, argv);
    iz::journal::WriterOptions o;
    o.dir = dir;
    auto w = iz::journal::Writer::open(o);
    if (!w) {
        fmt::print(stderr, "iz-demo-journal: {}\n", w.error().message);
        return 1;
    }
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t = (static_cast<int64_t>(ts.tv_sec) - 120) * 1'000'000'000;
    std::vector<Record> records;
    Record start;
    start.op = Op::start;
    start.time_ns = t;
    start.message = "demo journal";
    records.push_back(start);
    // A quarter of a second after the one before, by a vim user unless
    // `carry` says otherwise, with what its op carries.
    auto add = [&](Op op, std::string path, auto carry) {
        Record r;
        r.op = op;
        r.path = std::move(path);
        r.time_ns = (t += 250'000'000);
        r.pid = 4242;
        r.uid = 1000;
        r.gid = 1000;
        r.comm = "vim";
        carry(r);
        records.push_back(std::move(r));
    };
    add(Op::mkdir, "notes", [](Record& r) { r.mode = 040755; });
    add(Op::create, "notes/todo.txt", [](Record& r) { r.mode = 0100644; });
    add(Op::write, "notes/todo.txt", [](Record& r) { r.ranges = {{0, 120}}; r.size = 120; });
    add(Op::close_write, "notes/todo.txt", [](Record& r) { r.size = 120; });
    add(Op::setattr, "notes/todo.txt", [](Record& r) { r.mode = 0100600; r.comm = "chmod"; });
    add(Op::symlink, "latest", [](Record& r) { r.target = "notes/todo.txt"; r.comm = "ln"; });
    add(Op::rename, "notes/todo.txt", [](Record& r) { r.target = "notes/done.txt"; r.comm = "mv"; });
    add(Op::unlink, "latest", [](Record& r) { r.comm = "rm"; });
    for (auto& r : records)
        if (auto ok = (*w)->append(r); !ok) {
            fmt::print(stderr, "iz-demo-journal: {}\n", ok.error().message);
            return 1;
        }
    if (auto ok = (*w)->close(); !ok) {
        fmt::print(stderr, "iz-demo-journal: {}\n", ok.error().message);
        return 1;
    }
    return 0;
}
