#pragma once
// POSIX ACLs in the form the kernel takes them as xattrs
// (system.posix_acl_access / system.posix_acl_default), built by hand so
// that tests need no libacl or setfacl.
#include <cstdint>
#include <string>
#include <tuple>

namespace iz::test {

// An ACL that grants `uid` rwx beyond the mode bits: a version, then
// (tag, perm, id) entries in tag order (user_obj, user, group_obj, mask,
// other).
inline std::string acl_granting_user(uint32_t uid) {
    std::string out;
    auto put16 = [&](uint16_t v) { out.append(reinterpret_cast<const char*>(&v), 2); };
    auto put32 = [&](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
    put32(2);  // POSIX_ACL_XATTR_VERSION
    for (auto [tag, perm, id] : {std::tuple{0x01, 7, ~0u}, {0x02, 7, uid}, {0x04, 5, ~0u}, {0x10, 7, ~0u}, {0x20, 5, ~0u}}) {
        put16(static_cast<uint16_t>(tag));
        put16(static_cast<uint16_t>(perm));
        put32(id);
    }
    return out;
}

}  // namespace iz::test
