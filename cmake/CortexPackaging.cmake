# `cpack` in a build tree makes cortex_<version>_<arch>.deb: everything `cmake --install` lays out
# (cmake/CortexInstall.cmake), installed into /usr whatever prefix the tree was configured with,
# stripped, owned by root, with its dependencies worked out by dpkg-shlibdeps (dpkg-dev).
#
#   cpack --config build/cortex/CPackConfig.cmake -B /tmp/deb    # -> /tmp/deb/cortex_0.1.0_amd64.deb
#
# libllama/ggml are inside (not in Debian 12); a CPU build of llama.cpp with GGML_NATIVE (what
# scripts/build_llamacpp.sh cpu makes) runs only on CPUs with this one's instruction set, so a
# package meant for other machines needs a portable llama.cpp (docs/RELIABILITY.md, Packaging).

if(CORTEX_BUNDLE_LLAMA AND GGML_NATIVE AND NOT GGML_BACKEND_DL)
    message(STATUS "Packaging: llama.cpp is built with GGML_NATIVE: a .deb of this tree runs on CPUs "
                   "with this one's instruction set only")
endif()

set(CORTEX_PACKAGE_MAINTAINER "Cortex maintainers <cortex@localhost>"
    CACHE STRING "Maintainer field of the Debian package")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cortex)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Cortex")
set(CPACK_PACKAGE_CONTACT ${CORTEX_PACKAGE_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "local language models as an OS component")
set(CPACK_PACKAGE_DESCRIPTION
    "Cortex turns plain requests into safe apt actions and runs its language
model on this machine through llama.cpp's libllama, linked in directly.
.
This package has the cortex, cortex-model and cortex-preload programs, the
libcortex library with its headers and pkg-config file, the Python module
cortex.llm, and systemd user units that keep a model warm. llama.cpp's
libraries come with it, privately.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # cortex_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# libcortex's shlibs entry, so that other packages' dpkg-shlibdeps can depend on this one. Written
# here rather than generated: CPack's would offer the private libllama/ggml copies too.
configure_file(${PROJECT_SOURCE_DIR}/packaging/debian/shlibs.in ${CMAKE_BINARY_DIR}/packaging/debian/shlibs @ONLY)
# The Python module is built for one CPython ABI (cpython-3XY); dpkg-shlibdeps cannot see that,
# since extension modules do not link libpython. apt runs the package actions (Priority:
# required, so not listed); the units need systemd only when a user enables them.
if(CORTEX_PYTHON_MODULE)
    math(EXPR next_minor "${CORTEX_PYTHON_VERSION_MINOR} + 1")
    set(CPACK_DEBIAN_PACKAGE_DEPENDS
        "python3 (>= ${CORTEX_PYTHON_VERSION_MAJOR}.${CORTEX_PYTHON_VERSION_MINOR}), python3 (<< ${CORTEX_PYTHON_VERSION_MAJOR}.${next_minor})")
endif()
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/triggers
    ${CMAKE_BINARY_DIR}/packaging/debian/shlibs)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Debian wants a changelog beside the copyright file (policy 12.7), compressed without a
# timestamp. Its date honours SOURCE_DATE_EPOCH, for reproducible packages.
string(TIMESTAMP cortex_changelog_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
file(WRITE ${CMAKE_BINARY_DIR}/packaging/changelog
    "cortex (${PROJECT_VERSION}) unstable; urgency=medium\n\n"
    "  * Built with CPack from the Cortex source tree.\n\n"
    " -- ${CORTEX_PACKAGE_MAINTAINER}  ${cortex_changelog_date}\n")
execute_process(COMMAND gzip -9nf ${CMAKE_BINARY_DIR}/packaging/changelog RESULT_VARIABLE gzip_result)
if(NOT gzip_result EQUAL 0)
    message(FATAL_ERROR "gzip failed on ${CMAKE_BINARY_DIR}/packaging/changelog")
endif()
install(FILES ${CMAKE_BINARY_DIR}/packaging/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})

include(CPack)
