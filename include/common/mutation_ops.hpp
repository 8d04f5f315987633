#pragma once
// The thirteen filesystem mutations that both the journal (journal::Op) and
// the wire (proto::OpKind) name, with the number both formats give each.
// One list, expanded into both enums, so the two numberings cannot drift
// apart; each format appends its own values after these. The numbers are on
// disk and on the wire: append only, never renumber.
//
// An X-macro because an enum cannot inherit enumerators: the alternative is
// two hand-kept lists and a static_assert per value.
#define IZ_MUTATION_OPS(X) \
    X(create, 1)           \
    X(mkdir, 2)            \
    X(mknod, 3)            \
    X(symlink, 4)          \
    X(link, 5)             \
    X(unlink, 6)           \
    X(rmdir, 7)            \
    X(rename, 8)           \
    X(setattr, 9)          \
    X(write, 10)           \
    X(truncate, 11)        \
    X(setxattr, 12)        \
    X(removexattr, 13)

#define IZ_MUTATION_ENUMERATOR(name, number) name = number,
