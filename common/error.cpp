#include "common/error.hpp"

#include <fmt/format.h>

#include <cstring>

namespace iz {

Error sys_error(std::string_view what, std::string_view path, int err) {
    return Error{fmt::format("{} '{}': {}", what, path, std::strerror(err)), err};
}

Error sys_error(std::string_view what, int err) {
    return Error{fmt::format("{}: {}", what, std::strerror(err)), err};
}

Error make_error(std::string message) { return Error{std::move(message), 0}; }

}  // namespace iz
