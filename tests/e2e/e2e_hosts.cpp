#include "e2e_hosts.hpp"

#include <signal.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace iz::test::e2e {

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::unique_ptr<ScratchFs> must_fs(const std::string& tag, uint64_t mib = 512, FsType type = FsType::ext4) {
    auto made = ScratchFs::make(type, mib, tag);
    if (!made) throw std::runtime_error(made.error().message);
    return std::move(*made);
}

}  // namespace

fs::path make_key(const TempDir& where) {
    auto key = where.path() / "key";
    auto r = run_process({bin_path("izreplicate").string(), "keygen", key.string()});
    if (r.exit_code != 0) throw std::runtime_error("izreplicate keygen: " + r.err);
    return key;
}

ServerHost::ServerHost(const Netns& ns, std::string address, fs::path key, const std::string& tag)
    : ns_(ns), address_(std::move(address)), key_(std::move(key)), fs_(must_fs(tag)) {
    log_file_ = fs::path(fs_->mount_point()).parent_path() / (fs_->mount_point().filename().string() + ".log");
}

ServerHost::~ServerHost() {
    proc_.reset();
    std::error_code ec;
    fs::remove(log_file_, ec);
}

void ServerHost::start(std::vector<std::string> extra) {
    proc_.reset();
    if (!extra.empty()) extra_ = std::move(extra);
    auto before = log().size();
    std::vector<std::string> argv{bin_path(program_).string(), "--root", root().string(), "--listen", endpoint(),
                                  "--key", key_.string(), "--foreground", "--log-file", log_file_.string(),
                                  "--log-level", "debug"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    argv.insert(argv.begin(), prefix_.begin(), prefix_.end());
    proc_ = std::make_unique<ChildProcess>(ns_.exec(argv));
    bool up = eventually([&] { return log().find("serving", before) != std::string::npos; }, std::chrono::seconds(10));
    if (!up) throw std::runtime_error("izreplicate did not start: " + log());
}

void ServerHost::kill9() {
    if (!proc_) return;
    proc_->signal(SIGKILL);
    proc_->wait(std::chrono::seconds(5));
    proc_.reset();
}

bool ServerHost::running() { return proc_ && proc_->running(); }

void ServerHost::pause() {
    if (proc_) proc_->signal(SIGSTOP);
}

void ServerHost::resume() {
    if (proc_) proc_->signal(SIGCONT);
}

void ServerHost::reload() {
    if (proc_) proc_->signal(SIGHUP);
}

std::string ServerHost::endpoint() const { return fmt::format("{}:{}", address_, kServerPort); }

fs::path ServerHost::replica(const std::string& fileset) const { return fs_->mount_point() / fileset; }

std::string ServerHost::log() const { return slurp(log_file_); }

AgentHost::AgentHost(const Netns& ns, fs::path key, const std::string& tag, FsType type)
    : ns_(ns), key_(std::move(key)), fs_(must_fs(tag, 1024, type)), work_("e2e-agent") {
    dir_ = fs_->mount_point() / "data";
    fs::create_directories(dir_);
    fs::create_directories(work_.path() / "run");
}

AgentHost::~AgentHost() {
    resume();  // a test that failed while the agent was stopped
    if (started_ && stop().exit_code != 0) kill9();
    for (int pid : pids_) {
        // Only if that pid is still an izwatch (not a pid used again since).
        if (slurp(fmt::format("/proc/{}/comm", pid)).starts_with("izwatch")) {
            ::kill(pid, SIGKILL);
            eventually([&] { return process_exited(pid); }, std::chrono::seconds(5));
        }
    }
}

std::vector<std::string> AgentHost::env() const { return {"IZ_RUN_DIR=" + (work_.path() / "run").string()}; }

ProcessResult AgentHost::start(const std::vector<std::string>& endpoints, const std::vector<std::string>& extra) {
    std::vector<std::string> argv{bin_path(program_).string(), "start",   dir_.string(),
                                  "--journal",                  journal().string(), "--state-dir",
                                  (work_.path() / "state").string(), "--key", key_.string()};
    for (auto& ep : endpoints) {
        argv.push_back("--server");
        argv.push_back(ep);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run_process(ns_.exec(argv), env());
    if (r.exit_code == 0) started_ = true;
    // Whatever start said, a daemon it left running is this host's to end.
    if (auto s = status(); s.is_object() && s.value("pid", 0) > 0) pids_.push_back(s.value("pid", 0));
    return r;
}

ProcessResult AgentHost::sync(int timeout_s) {
    return run_process({bin_path("izwatch").string(), "sync", dir_.string(), "--timeout", std::to_string(timeout_s)},
                       env(), std::chrono::seconds(timeout_s + 10));
}

ProcessResult AgentHost::izwatch(const std::string& subcommand, const std::vector<std::string>& args, int timeout_s) {
    std::vector<std::string> argv{bin_path("izwatch").string(), subcommand, dir_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, env(), std::chrono::seconds(timeout_s));
}

ProcessResult AgentHost::stop() {
    auto r = run_process({bin_path("izwatch").string(), "stop", dir_.string()}, env());
    if (r.exit_code == 0) started_ = false;
    return r;
}

nlohmann::json AgentHost::status() {
    auto r = run_process({bin_path("izwatch").string(), "status", dir_.string(), "--json"}, env());
    if (r.exit_code != 0) return nlohmann::json::object();
    return nlohmann::json::parse(r.out, nullptr, false);
}

void AgentHost::pause() {
    auto s = status();
    int pid = s.is_object() ? s.value("pid", 0) : 0;
    if (pid <= 0 || ::kill(pid, SIGSTOP) != 0) throw std::runtime_error("cannot pause izwatch: " + s.dump());
    paused_pid_ = pid;
}

void AgentHost::resume() {
    if (paused_pid_ > 0) ::kill(paused_pid_, SIGCONT);
    paused_pid_ = 0;
}

void AgentHost::kill9() {
    auto s = status();
    int pid = s.is_object() ? s.value("pid", 0) : 0;
    if (pid > 0) {
        ::kill(pid, SIGKILL);
        eventually([&] { return process_exited(pid); }, std::chrono::seconds(5));
    }
    started_ = false;
}

void AgentHost::forget_journal_and_state() {
    fs::remove_all(journal());
    fs::remove_all(work_.path() / "state");
}

std::string AgentHost::log() const { return slurp(work_.path() / "state" / "izwatch.log"); }

std::string manifest_diff(const std::string& a, const std::string& b) {
    auto lines = [](const std::string& s) {
        std::set<std::string> out;
        std::istringstream in(s);
        for (std::string l; std::getline(in, l);) out.insert(l);
        return out;
    };
    // A path deeper than PATH_MAX is shown by its ends.
    auto shortened = [](const std::string& l) {
        return l.size() <= 600 ? l : fmt::format("{} ...({} bytes)... {}", l.substr(0, 200), l.size(), l.substr(l.size() - 300));
    };
    auto la = lines(a), lb = lines(b);
    std::string out;
    int shown = 0;
    for (auto& l : la)
        if (!lb.count(l) && shown++ < 20) out += "  source only:  " + shortened(l) + "\n";
    shown = 0;
    for (auto& l : lb)
        if (!la.count(l) && shown++ < 20) out += "  replica only: " + shortened(l) + "\n";
    return out;
}

std::vector<nlohmann::json> journal_records(const fs::path& dir) {
    auto r = run_process({bin_path("izlog").string(), "-D", dir.string(), "--no-pager", "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<nlohmann::json> out;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
}

}  // namespace iz::test::e2e
