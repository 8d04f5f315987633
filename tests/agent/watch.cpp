#include "watch.hpp"

#include <signal.h>
#include <cerrno>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace iz::test::agent {

TempDir::TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = fs::temp_directory_path() / fmt::format("iz-{}-{}-{}", tag, getpid(), counter++);
    fs::remove_all(path_);
    fs::create_directories(path_);
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

Watch::Watch(fs::path dir, const fs::path& work, const fs::path& run_dir)
    : dir_(std::move(dir)),
      run_(run_dir.empty() ? work / "run" : run_dir),
      journal_(work / "journal"),
      state_(work / "state") {}

Watch::~Watch() {
    if (pid_ <= 0 || !izwatch_alive(pid_)) return;
    ::kill(pid_, SIGCONT);
    // Once stop has answered, everything is durable and the daemon no longer
    // holds the mount; detaching its eBPF programs then takes the kernel
    // about a second, which nobody needs to wait for. Only a daemon that
    // does not answer is killed.
    auto stopped = izwatch({"stop", dir_.string()}, std::chrono::seconds(20));
    if (stopped.exit_code != 0) kill_daemon();
}

void Watch::kill_daemon() {
    if (pid_ <= 0) return;
    if (izwatch_alive(pid_)) {
        ::kill(pid_, SIGCONT);
        ::kill(pid_, SIGKILL);
        eventually([&] { return !izwatch_alive(pid_); }, std::chrono::seconds(5));
        // A zombie leader may still have threads (io_uring workers) that
        // hold its files, the journal's lock among them, until they exit.
        eventually([&] { return process_exited(pid_); }, std::chrono::seconds(5));
    }
    pid_ = 0;
}

ProcessResult Watch::izwatch(const std::vector<std::string>& args, std::chrono::seconds timeout) const {
    std::vector<std::string> argv = {bin_path("izwatch").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, env(), timeout);
}

ProcessResult Watch::start(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"start", dir_.string(), "--journal", journal_.string(), "--state-dir",
                                     state_.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = izwatch(args);
    if (r.exit_code == 0) {
        auto s = status();
        if (s.is_object()) pid_ = s.value("pid", 0);
    }
    return r;
}

ProcessResult Watch::sync() const { return izwatch({"sync", dir_.string()}); }

ProcessResult Watch::stop() { return izwatch({"stop", dir_.string()}); }

json Watch::status() const {
    auto r = izwatch({"status", "--json", dir_.string()});
    if (r.exit_code != 0) return nullptr;
    auto j = json::parse(r.out, nullptr, false);
    return j.is_discarded() ? json(nullptr) : j;
}

std::vector<json> Watch::journal() const { return read_journal(journal_); }

bool izwatch_alive(pid_t pid) {
    if (pid <= 0) return false;
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string line;
    if (!std::getline(stat, line)) return false;
    // "pid (comm) state ...": the comm may hold spaces and parentheses.
    auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 2 >= line.size()) return false;
    return line.substr(open + 1, close - open - 1) == "izwatch" && line[close + 2] != 'Z';
}

std::vector<json> read_journal(const fs::path& journal_dir) {
    auto r = run_process({bin_path("izlog").string(), "-D", journal_dir.string(), "-o", "json", "--no-pager"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> out;
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty()) continue;
        auto j = json::parse(line, nullptr, false);
        EXPECT_FALSE(j.is_discarded()) << "izlog printed a line that is not JSON: " << line;
        if (!j.is_discarded()) out.push_back(std::move(j));
    }
    return out;
}

bool is_mutation(const json& record) {
    auto op = record.value("op", "");
    return op != "start" && op != "stop" && op != "rescan" && op != "overflow";
}

std::vector<json> mutations_after(const std::vector<json>& records, uint64_t after) {
    std::vector<json> out;
    for (auto& r : records)
        if (r.value("lsn", uint64_t{0}) > after && is_mutation(r)) out.push_back(r);
    return out;
}

std::string describe(const json& record) {
    auto s = record.value("op", "?") + " " + record.value("path", "");
    if (record.contains("target")) s += " -> " + record["target"].get<std::string>();
    return s;
}

std::vector<std::string> describe(const std::vector<json>& records) {
    std::vector<std::string> out;
    for (auto& r : records) out.push_back(describe(r));
    return out;
}

std::vector<json> with_op(const std::vector<json>& records, const std::string& op, const std::string& path) {
    std::vector<json> out;
    for (auto& r : records)
        if (r.value("op", "") == op && (path.empty() || r.value("path", "") == path)) out.push_back(r);
    return out;
}

bool names_whole_file(const json& write_record) {
    // izlog prints "ranges" on every write record; empty means the whole file.
    return write_record.value("op", "") == "write" && write_record.contains("ranges") && write_record["ranges"].empty();
}

std::vector<std::pair<uint64_t, uint64_t>> ranges_of(const json& write_record) {
    std::vector<std::pair<uint64_t, uint64_t>> out;
    for (auto& g : write_record.value("ranges", json::array())) out.emplace_back(g.at(0).get<uint64_t>(), g.at(1).get<uint64_t>());
    return out;
}

}  // namespace iz::test::agent
