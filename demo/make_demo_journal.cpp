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
    auto rec = [&](Op op, std::string path) {
        Record r;
        r.op = op;
        r.path = std::move(path);
        r.time_ns = (t += 250'000'000);
        r.pid = 4242;
        r.uid = 1000;
        r.gid = 1000;
        r.comm = "vim";
        return r;
    };
    std::vector<Record> records;
    Record start;
    start.op = Op::start;
    start.time_ns = t;
    start.message = "demo journal";
    records.push_back(start);
    auto d = rec(Op::mkdir, "notes");
    d.mode = 040755;
    records.push_back(d);
    auto c = rec(Op::create, "notes/todo.txt");
    c.mode = 0100644;
    records.push_back(c);
    auto wr = rec(Op::write, "notes/todo.txt");
    wr.ranges = {{0, 120}};
    wr.size = 120;
    records.push_back(wr);
    auto cw = rec(Op::close_write, "notes/todo.txt");
    cw.size = 120;
    records.push_back(cw);
    auto ch = rec(Op::setattr, "notes/todo.txt");
    ch.mode = 0100600;
    ch.comm = "chmod";
    records.push_back(ch);
    auto ln = rec(Op::symlink, "latest");
    ln.target = "notes/todo.txt";
    ln.comm = "ln";
    records.push_back(ln);
    auto mv = rec(Op::rename, "notes/todo.txt");
    mv.target = "notes/done.txt";
    mv.comm = "mv";
    records.push_back(mv);
    auto rm = rec(Op::unlink, "latest");
    rm.comm = "rm";
    records.push_back(rm);
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
