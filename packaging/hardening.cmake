# Debian's hardening flags for every C and C++ target, as a Debian package
# build would pass them: what `dpkg-buildflags` gives with every hardening
# feature on (DEB_BUILD_MAINT_OPTIONS=hardening=+all: fortify, the strong
# stack protector, format checks, relro and bindnow; PIE is the compiler's
# default on Debian), plus the two that dpkg-buildflags gives on amd64 only
# from dpkg 1.22 on (-fstack-clash-protection, -fcf-protection), where the
# compiler knows them. DEB_*FLAGS_APPEND/_STRIP in the environment are
# honoured, since dpkg-buildflags reads them.
#
# Every build gets them, not only the one a package is made from: the tests
# run the programs that get packaged, with the flags they ship with.
#
# The build type keeps deciding optimisation and debug info (-O and -g are
# left out of dpkg-buildflags' answer), and -ffile-prefix-map too: it would
# map the directory configure runs in, and debuggers would no longer find
# the sources. The eBPF programs are not C/C++ targets of CMake (clang
# -target bpf, driven by Makefile.bpf, which reads no CFLAGS): they get none
# of this.
#
# Included by the top-level CMakeLists before any target is made.
option(IZ_HARDENING "Build with Debian's hardening flags (dpkg-buildflags, hardening=+all)" ON)
if(NOT IZ_HARDENING)
  return()
endif()

include(CheckCXXCompilerFlag)
include(CheckPIESupported)

find_program(DPKG_BUILDFLAGS dpkg-buildflags)
if(NOT DPKG_BUILDFLAGS)
  message(FATAL_ERROR "dpkg-buildflags not found (apt-get install dpkg-dev), or configure with -DIZ_HARDENING=OFF")
endif()

# iz_buildflags(VAR KIND): dpkg-buildflags' KIND (CPPFLAGS, CFLAGS, ...) as a
# list, without what the build type decides.
function(iz_buildflags var kind)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env DEB_BUILD_MAINT_OPTIONS=hardening=+all ${DPKG_BUILDFLAGS} --get ${kind}
                  OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dpkg-buildflags --get ${kind} failed (${rc})")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  list(FILTER flags EXCLUDE REGEX "^-(O.*|g.*|f(file|debug|macro)-prefix-map=.*)$")
  set(${var} ${flags} PARENT_SCOPE)
endfunction()

iz_buildflags(iz_cppflags CPPFLAGS)
iz_buildflags(iz_cflags CFLAGS)
iz_buildflags(iz_cxxflags CXXFLAGS)
iz_buildflags(iz_ldflags LDFLAGS)

# _FORTIFY_SOURCE needs the optimiser (glibc warns at -O0 and checks nothing).
if(CMAKE_BUILD_TYPE STREQUAL "Debug")
  list(FILTER iz_cppflags EXCLUDE REGEX "^-D_FORTIFY_SOURCE")
endif()

foreach(flag -fstack-clash-protection -fcf-protection)
  string(MAKE_C_IDENTIFIER "IZ_HAS${flag}" known)
  check_cxx_compiler_flag(${flag} ${known})
  foreach(list iz_cflags iz_cxxflags)
    if(${known} AND NOT flag IN_LIST ${list})
      list(APPEND ${list} ${flag})
    endif()
  endforeach()
endforeach()

add_compile_options(${iz_cppflags} "$<$<COMPILE_LANGUAGE:C>:${iz_cflags}>" "$<$<COMPILE_LANGUAGE:CXX>:${iz_cxxflags}>")
add_link_options(${iz_ldflags})

# PIE asked for explicitly, not only by the compiler's default.
check_pie_supported(LANGUAGES C CXX)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)

list(JOIN iz_cxxflags " " shown_cxx)
list(JOIN iz_cppflags " " shown_cpp)
list(JOIN iz_ldflags " " shown_ld)
message(STATUS "Hardening (IZ_HARDENING): ${shown_cpp} ${shown_cxx} ${shown_ld} PIE")
