#pragma once
// The server's one file of agents (--agents, /etc/intermezzo/agents.conf):
// which identities may connect, under which name, and what each name may do
// with which fileset. '#' starts a comment; two kinds of lines:
//
//   agent NAME IDENTITY...      IDENTITY: a node ID (an agent's certificate)
//                               or key:PSK-IDENTITY (agents on that shared key,
//                               e.g. key:iz-psk1-266bb0066ac9825e)
//   access WHO FILESET ACCESS   WHO: a NAME or * (any agent of this file);
//                               FILESET: a name or *; ACCESS: read-write,
//                               send-only, receive-only or none (access.hpp)
//
// A name may hold several identities (one line or several), all accepted at
// once: that is how a key or a certificate is rotated. An identity belongs
// to one name. A certificate is bound to its name: its agent must use it as
// its --agent-id. A shared key may be held by many agents, which name
// themselves; the key's name is what access lines call them. An identity
// no agent line names is refused, and so is a fileset no access line gives:
// the first access line that matches decides, none matching means none.
//
// It replaces two older files, read only for their deprecated options:
// --allowed-agents (allowed_agents.hpp) and --access (AccessList::read).
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "access.hpp"
#include "common/error.hpp"

namespace iz::replicator {

struct AgentsFile {
    // Fingerprint (32 raw bytes) -> the name it is bound to ("" any: only
    // from the older --allowed-agents).
    std::map<std::string, std::string> certificates;
    // PSK identity -> name.
    std::map<std::string, std::string> keys;
    // Whether agents on a shared key must be named in `keys` (this file);
    // false: any key the server holds (the older options).
    bool keys_listed = false;
    // Null: every agent may read and write every fileset (the older
    // options without --access).
    std::shared_ptr<const AccessList> access;

    // The agents file. Fails naming the line and what is wrong with it.
    static Result<AgentsFile> read(const std::filesystem::path& path);
    // The same from the two older files ("" for either: not given).
    static Result<AgentsFile> read_older(const std::filesystem::path& allowed_agents,
                                         const std::filesystem::path& access);

    // The name of an agent on a shared key ("" when this file names no keys;
    // nullopt: the key is not among the agents).
    std::optional<std::string> key_name(const std::string& psk_identity) const;
};

}  // namespace iz::replicator
