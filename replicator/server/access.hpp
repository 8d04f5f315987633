#pragma once
// Who may do what with which fileset: the access rules of the server's
// agents file (agents_file.hpp), or of the older --access file (deprecated).
//
// The older file has one rule a line, "WHO FILESET ACCESS", '#' starts a
// comment:
//   WHO      a node ID (an agent's certificate), key:IDENTITY (agents on the
//            shared key of that PSK identity, e.g. key:iz-psk1-266bb0066ac9825e),
//            or * (any authenticated agent)
//   FILESET  a fileset name, or * (any)
//   ACCESS   read-write   apply what it sends, answer its verifications
//            send-only    apply what it sends, answer no verification
//            receive-only apply nothing it sends; answer its verifications
//            none         refuse the fileset at the handshake
// The first rule that matches decides; no rule matching means none. Agent
// ids are not matched: on a shared key an agent names itself. In the agents
// file WHO is the name an agent line gave the identity instead.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace iz::replicator {

enum class Access { none, receive_only, send_only, read_write };

std::string_view access_name(Access a);
// "read-write" -> Access::read_write...; nullopt for anything else.
std::optional<Access> parse_access(std::string_view word);

struct AccessRule {
    std::string who;  // raw fingerprint, "key:IDENTITY", "*", or a name (by_name)
    bool by_name = false;
    std::string fileset;
    Access access = Access::none;
    int line = 0;
};

class AccessList {
public:
    // Fails naming the line and what is wrong with it.
    static Result<AccessList> read(const std::filesystem::path& path);

    // Rules already read (the agents file's).
    explicit AccessList(std::vector<AccessRule> rules = {}) : rules_(std::move(rules)) {}

    // For an agent known by `fingerprint` (32 raw bytes, "" none) or
    // `psk_identity` ("" none), under `name` (the agents file's name for
    // that identity; "" none).
    Access of(const std::string& fingerprint, const std::string& psk_identity, const std::string& fileset,
              const std::string& name = {}) const;

    size_t size() const { return rules_.size(); }

private:
    std::vector<AccessRule> rules_;
};

}  // namespace iz::replicator
