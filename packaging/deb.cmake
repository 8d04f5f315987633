# The Debian package: `cpack -G DEB` in the build directory makes
# intermezzo_<version>_amd64.deb of what `cmake --install` installs.
#
# CPack rather than debian/ and dpkg-buildpackage: the install rules in the
# CMakeLists are already the one description of what goes where, and CPack
# packages exactly them, from the build tree the tests just ran against;
# debian/ would describe the same files a second time (debian/rules,
# *.install, *.manpages) and rebuild everything in a clean tree of its own.
# What CPack does not know, Debian's conventions, is said below.
#
# Included last by the top-level CMakeLists, after every install rule.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME intermezzo)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # intermezzo_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "directory replication through fanotify, eBPF and a journal")
# Lines of at most 80 columns (lintian: extended-description-line-too-long).
string(JOIN "\n" CPACK_PACKAGE_DESCRIPTION
       "An agent (izwatch) captures every mutation of an ext4 or XFS directory"
       "through fanotify and eBPF tracepoints into a durable, checksummed journal"
       "and ships it to servers (izreplicate) that apply it beneath a root and"
       "acknowledge what is durable. izlog reads the journal the way journalctl"
       "reads logs.")
# Both from the cache variables of packaging/CMakeLists.txt.
set(CPACK_PACKAGE_CONTACT ${IZ_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${IZ_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE ${IZ_PACKAGE_HOMEPAGE})
# Dependencies from the shared libraries the programs link, by
# dpkg-shlibdeps (the libraries' packages and minimum versions).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# And a program no library brings: `systemctl reload izreplicate` runs
# /bin/kill (procps), which a minimal Debian (a container's, debootstrap's)
# does not have. dpkg-shlibdeps' list is added to this one.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "procps")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
# The example settings are the administrator's once installed: upgrades keep
# their changes, purge removes them.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/packaging/conffiles)
file(WRITE ${CMAKE_BINARY_DIR}/packaging/conffiles
     "${IZ_CONFIG_DIR}/izreplicate.conf\n${IZ_CONFIG_DIR}/izwatch.conf.example\n${IZ_CONFIG_DIR}/agents.conf.example\n")
# Stripped programs (debug info stays in the build tree); files and
# directories as Debian wants them (0755 directories, root-owned).
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
# cpack installs what is built and builds nothing: the package test builds
# the programs and pages first. (Otherwise cpack, and `make install`, would
# build every target, the tests and benchmarks too.)
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
include(CPack)
