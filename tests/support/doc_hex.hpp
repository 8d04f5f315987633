#pragma once
// Example bytes kept in a document (a fenced block opened with "```hex NAME"),
// read back so a test can decode them with the real decoder: the document
// then cannot drift from the code. Within a block, '#' starts a comment
// that runs to the end of the line; whitespace is ignored.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <sstream>
#include <string>

namespace iz::test {

// The bytes of the block NAME in the file at `path`; fails the test (and
// returns "") when the file or the block is missing or holds a non-hex digit.
inline std::string doc_hex(const std::string& path, const std::string& name) {
    std::ifstream in(path);
    if (!in) {
        ADD_FAILURE() << "cannot read " << path;
        return {};
    }
    std::string line, digits;
    bool inside = false, found = false;
    while (std::getline(in, line)) {
        if (!inside) {
            if (line == "```hex " + name) inside = found = true;
            continue;
        }
        if (line.starts_with("```")) break;
        if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        for (char c : line) {
            if (std::isspace(static_cast<unsigned char>(c))) continue;
            if (!std::isxdigit(static_cast<unsigned char>(c))) {
                ADD_FAILURE() << "block '" << name << "' of " << path << " holds '" << c << "'";
                return {};
            }
            digits += c;
        }
    }
    if (!found) {
        ADD_FAILURE() << "no ```hex " << name << " block in " << path;
        return {};
    }
    if (digits.size() % 2) {
        ADD_FAILURE() << "block '" << name << "' of " << path << " has an odd number of hex digits";
        return {};
    }
    std::string out;
    for (size_t i = 0; i < digits.size(); i += 2) out.push_back(static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16)));
    return out;
}

// Hex digits (no spaces) to bytes, for fixtures written in a test.
inline std::string unhex(std::string_view digits) {
    std::string out;
    for (size_t i = 0; i + 1 < digits.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(std::string(digits.substr(i, 2)), nullptr, 16)));
    return out;
}

}  // namespace iz::test
