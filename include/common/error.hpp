#pragma once
// The one error type that crosses component boundaries. A message is written
// for a person: what failed, on which path, and the errno text when a syscall
// is to blame.
#include <expected>
#include <string>
#include <string_view>

namespace iz {

struct Error {
    std::string message;
    int sys_errno = 0;  // 0 when the failure is not a syscall's

    const std::string& what() const { return message; }
};

template <class T>
using Result = std::expected<T, Error>;

using Status = std::expected<void, Error>;

// "what 'path': strerror(err)" — the shape every syscall failure takes.
Error sys_error(std::string_view what, std::string_view path, int err);
// Same, without a path.
Error sys_error(std::string_view what, int err);
Error make_error(std::string message);

inline std::unexpected<Error> fail(Error e) { return std::unexpected<Error>(std::move(e)); }

}  // namespace iz
