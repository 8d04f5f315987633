// A full disk: a clear error, nothing reported durable that is not, no
// corrupt record, and the journal usable again once there is space.
#include <sys/mount.h>

#include <gtest/gtest.h>

#include <fstream>

#include "journal/reader.hpp"
#include "journal/writer.hpp"
#include "sample_records.hpp"
#include "support/scratch_fs.hpp"

using namespace iz::journal;

TEST(FullDisk, ClearErrorNoCorruptionAndRecoveryOnceSpaceReturns) {
    auto scratch = iz::test::ScratchFs::make(iz::test::FsType::tmpfs, 2, "journal-full");
    ASSERT_TRUE(scratch) << scratch.error().message;
    auto dir = (*scratch)->mount_point() / "journal";
    // Most of the space goes to a file we can delete later.
    auto filler = (*scratch)->mount_point() / "filler";
    {
        std::ofstream f(filler, std::ios::binary);
        std::string mib(1 << 20, 'x');
        f.write(mib.data(), static_cast<std::streamsize>(mib.size()));
    }
    WriterOptions o;
    o.dir = dir;
    o.segment_bytes = 128 << 10;
    uint64_t durable = 0;
    std::string error;
    {
        auto w = Writer::open(o);
        ASSERT_TRUE(w) << w.error().message;
        for (uint64_t i = 0; i < 100000; ++i) {
            auto lsn = (*w)->append(iz::test::realistic_record(i));
            if (!lsn) {
                error = lsn.error().message;
                break;
            }
            if (i % 50 == 0) {
                auto st = (*w)->wait_durable(*lsn);
                if (!st) {
                    error = st.error().message;
                    break;
                }
            }
        }
        durable = (*w)->durable_lsn();
        EXPECT_TRUE((*w)->failure());
        (void)(*w)->close();
    }
    EXPECT_NE(error.find("No space left on device"), std::string::npos) << error;
    EXPECT_NE(error.find(dir.string()), std::string::npos) << error;
    ASSERT_GT(durable, 0u);

    auto report = verify_journal(dir);
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_FALSE(report->first_error) << report->first_error->message;
    EXPECT_GE(report->last_lsn, durable);  // everything reported durable is there

    std::filesystem::remove(filler);
    auto w = Writer::open(o);
    ASSERT_TRUE(w) << w.error().message;
    uint64_t head = (*w)->head_lsn();
    EXPECT_GE(head, durable);
    auto lsn = (*w)->append(iz::test::realistic_record(1));
    ASSERT_TRUE(lsn) << lsn.error().message;
    EXPECT_EQ(*lsn, head + 1);
    ASSERT_TRUE((*w)->flush());
    ASSERT_TRUE((*w)->close());
    report = verify_journal(dir);
    ASSERT_TRUE(report);
    EXPECT_FALSE(report->first_error);
    EXPECT_EQ(report->last_lsn, head + 1);
}
