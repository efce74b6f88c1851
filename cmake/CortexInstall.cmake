# Install layout beyond the targets: libllama/ggml bundled privately, the systemd user units with
# the installed binary's path, docs and licences. Included from the top CMakeLists.txt after the
# llama package is found; cmake/CortexPackaging.cmake turns the result into a .deb.
#
#   <prefix>/bin                     cortex, cortex-model, cortex-preload
#   <prefix>/<libdir>                libcortex (+ pkgconfig/cortex.pc)
#   <prefix>/<libdir>/cortex         libllama, libllama-common, libggml*, ggml-rpc-server (private)
#   <prefix>/include/cortex          public headers
#   <prefix>/lib/systemd/user        cortex-preload.service, cortex-preload.socket
#   <prefix>/share/cortex            catalog.json, intents.json (compiled in too; for reference)
#   <prefix>/share/doc/cortex        README, PROTOCOL, HTTP, copyright
#   python3's dist-packages          cortex/ (see python/CMakeLists.txt)

# The loader reads $ORIGIN-relative run paths, so the installed tree works wherever it lands
# (a prefix, a .deb's /usr) and never looks into the build folder.
file(RELATIVE_PATH cortex_bin_to_lib /p/${CMAKE_INSTALL_BINDIR} /p/${CMAKE_INSTALL_LIBDIR})
if(CORTEX_BUNDLE_LLAMA)
    set(CMAKE_INSTALL_RPATH "$ORIGIN/${cortex_bin_to_lib};$ORIGIN/${cortex_bin_to_lib}/cortex")
    set(CORTEX_LIB_INSTALL_RPATH "$ORIGIN/cortex")
else()
    set(CMAKE_INSTALL_RPATH "$ORIGIN/${cortex_bin_to_lib};${LLAMA_LIB_DIR}")
    set(CORTEX_LIB_INSTALL_RPATH "${LLAMA_LIB_DIR}")
endif()

if(CORTEX_BUNDLE_LLAMA)
    # What a Cortex process loads: libllama, libllama-common, libggml, libggml-base and every
    # backend library or module (libggml-cpu, -rpc, -cuda, -blas; in a GGML_BACKEND_DL build the
    # CPU variants libggml-cpu-<isa>.so). Each goes in once, under the name the loader asks for
    # (its SONAME link's name, e.g. libllama.so.0): no version links, since nothing but Cortex
    # loads them and ldconfig never looks here, and no bare lib*.so development links. Nor the
    # tools' lib*-impl.so, libmtmd or the benchmark programs.
    file(GLOB cortex_llama_candidates LIST_DIRECTORIES false
        ${LLAMA_LIB_DIR}/libllama.so* ${LLAMA_LIB_DIR}/libllama-common.so* ${LLAMA_LIB_DIR}/libggml*.so*)
    set(cortex_llama_names "")
    set(cortex_llama_covered "")
    foreach(file ${cortex_llama_candidates})
        get_filename_component(name ${file} NAME)
        if(IS_SYMLINK ${file} AND NOT name MATCHES "\\.so$")
            file(REAL_PATH ${file} real)
            install(FILES ${real} DESTINATION ${CMAKE_INSTALL_LIBDIR}/cortex RENAME ${name})
            list(APPEND cortex_llama_names ${name})
            list(APPEND cortex_llama_covered ${real})
        endif()
    endforeach()
    foreach(file ${cortex_llama_candidates})  # files no SONAME link names: modules
        get_filename_component(name ${file} NAME)
        if(NOT IS_SYMLINK ${file} AND NOT file IN_LIST cortex_llama_covered)
            install(FILES ${file} DESTINATION ${CMAKE_INSTALL_LIBDIR}/cortex)
            list(APPEND cortex_llama_names ${name})
        endif()
    endforeach()
    if(NOT cortex_llama_names)
        message(FATAL_ERROR "CORTEX_BUNDLE_LLAMA: no libllama/libggml libraries in ${LLAMA_LIB_DIR}")
    endif()
    set(cortex_rpc_server ${LLAMA_BIN_DIR}/ggml-rpc-server)
    if(NOT EXISTS ${cortex_rpc_server})
        set(cortex_rpc_server "")
    endif()
    if(cortex_rpc_server)
        # Beside the libraries rather than in libexec/: its run path ($ORIGIN/../lib) can only be
        # rewritten to something no longer, and $ORIGIN is. Run on the hosts that lend their
        # devices (README, "Multi-GPU and RPC").
        install(PROGRAMS ${cortex_rpc_server} DESTINATION ${CMAKE_INSTALL_LIBDIR}/cortex)
    endif()
    # llama.cpp's build gave them the run path $ORIGIN/../lib; here they sit beside each other.
    # Stripped when the install strips (cmake --install --strip, CPack): they carry a full symbol
    # table.
    set(cortex_fix_files ${cortex_llama_names})
    if(cortex_rpc_server)
        list(APPEND cortex_fix_files ggml-rpc-server)
    endif()
    install(CODE "
        set(cortex_private_dir \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/cortex\")
        foreach(name ${cortex_fix_files})
            file(RPATH_SET FILE \"\${cortex_private_dir}/\${name}\" NEW_RPATH \"\\\$ORIGIN\")
            if(CMAKE_INSTALL_DO_STRIP)
                execute_process(COMMAND \"${CMAKE_STRIP}\" --strip-unneeded \"\${cortex_private_dir}/\${name}\"
                                RESULT_VARIABLE result)
                if(result)
                    message(FATAL_ERROR \"could not strip \${cortex_private_dir}/\${name}\")
                endif()
            endif()
        endforeach()")

    # A GGML_BACKEND_DL build looks for its backend modules in the directory compiled into ggml
    # (GGML_BACKEND_DIR), then beside the executable: an installed tree finds them only if that
    # directory is where they are installed (by cmake --install into this prefix, or the .deb).
    if(GGML_BACKEND_DL)
        set(install_dir ${CMAKE_INSTALL_FULL_LIBDIR}/cortex)
        set(deb_dir /usr/${CMAKE_INSTALL_LIBDIR}/cortex)
        if(NOT GGML_BACKEND_DIR STREQUAL install_dir AND NOT GGML_BACKEND_DIR STREQUAL deb_dir)
            message(WARNING "llama.cpp was built with GGML_BACKEND_DL and GGML_BACKEND_DIR='${GGML_BACKEND_DIR}': "
                "an installed Cortex will not find its ggml backends. Build llama.cpp with "
                "LLAMA_CMAKE_ARGS=-DGGML_BACKEND_DIR=${deb_dir} for the .deb (or ${install_dir} for cmake --install)")
        endif()
    endif()
endif()

# The units name the installed daemon by its absolute path, which is only known when installing:
# a .deb installs into /usr whatever prefix this tree was configured with.
set(cortex_units_src ${PROJECT_SOURCE_DIR}/packaging/systemd)
install(CODE "
    if(IS_ABSOLUTE \"${CMAKE_INSTALL_BINDIR}\")
        set(CORTEX_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
    else()
        set(CORTEX_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
    endif()
    if(IS_ABSOLUTE \"${CMAKE_INSTALL_DOCDIR}\")
        set(CORTEX_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")
    else()
        set(CORTEX_DOCDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\")
    endif()
    # A scratch folder of its own: two installs of this tree may run at once (the tests do).
    string(RANDOM LENGTH 12 tag)
    set(scratch \"${CMAKE_BINARY_DIR}/CMakeFiles/cortex-units-\${tag}\")
    configure_file(\"${cortex_units_src}/cortex-preload.service.in\" \"\${scratch}/cortex-preload.service\" @ONLY)
    file(INSTALL \"\${scratch}/cortex-preload.service\" \"${cortex_units_src}/cortex-preload.socket\"
         DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/user\")
    file(REMOVE_RECURSE \"\${scratch}\")")

install(FILES README.md docs/PROTOCOL.md docs/HTTP.md packaging/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
