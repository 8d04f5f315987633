#pragma once
// An owned file descriptor, closed when it goes out of scope.
#include <unistd.h>

#include <memory>
#include <utility>

namespace iz {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

// A descriptor owned by several holders, closed when the last one lets go:
// a directory kept open by the DirCache and by an operation that began in it.
class SharedFd {
public:
    SharedFd() = default;
    explicit SharedFd(UniqueFd fd) : fd_(std::make_shared<UniqueFd>(std::move(fd))) {}

    int get() const { return fd_ ? fd_->get() : -1; }
    bool valid() const { return fd_ && fd_->valid(); }
    bool same(const SharedFd& o) const { return fd_ == o.fd_; }

private:
    std::shared_ptr<UniqueFd> fd_;
};

}  // namespace iz
