# libllama + ggml, prebuilt, from third_party/llama (installed there by scripts/fetch-llama).
#
# Defines:
#   llama::llama               imported target: libllama + libggml + libggml-base, headers (SYSTEM)
#   ig_use_llama(<target>)     links llama::llama, sets build/install rpaths and the backend dir
#   ig_llama_smoke_test()      wires tests/unit/test_llama_smoke.c (if built) to mkgguf + llama
#   mkgguf                     tools/mkgguf*.c: random-weight GGUF writer (needs no libllama)
#
# The CPU backends (libggml-cpu-<level>.so) are not linked: the program calls
# ggml_backend_load_all_from_path(IG_LLAMA_BACKEND_DIR) and ggml picks the best one for the CPU.

set(IG_LLAMA_DIR "${CMAKE_SOURCE_DIR}/third_party/llama")
set(IG_LLAMA_LIB_DIR "${IG_LLAMA_DIR}/lib")
set(IG_LLAMA_INCLUDE_DIR "${IG_LLAMA_DIR}/include")
# Where `make install` puts the libraries, relative to the prefix and to bin/.
set(IG_LLAMA_INSTALL_LIBDIR "lib/infergate")

if(NOT EXISTS "${IG_LLAMA_INCLUDE_DIR}/llama.h" OR NOT EXISTS "${IG_LLAMA_LIB_DIR}/libllama.v0.5.0.so")
  message(FATAL_ERROR "libllama is missing from ${IG_LLAMA_DIR}: run scripts/bootstrap "
                      "(or scripts/fetch-llama) first, then configure again.")
endif()

add_library(llama::ggml-base SHARED IMPORTED)
set_target_properties(llama::ggml-base PROPERTIES
  IMPORTED_LOCATION "${IG_LLAMA_LIB_DIR}/libggml-base.so"
  IMPORTED_SONAME "libggml-base.so")

add_library(llama::ggml SHARED IMPORTED)
set_target_properties(llama::ggml PROPERTIES
  IMPORTED_LOCATION "${IG_LLAMA_LIB_DIR}/libggml.v0.5.0.so"
  IMPORTED_SONAME "libggml.v0.5.0.so")

add_library(llama::llama SHARED IMPORTED)
set_target_properties(llama::llama PROPERTIES
  IMPORTED_LOCATION "${IG_LLAMA_LIB_DIR}/libllama.v0.5.0.so"
  IMPORTED_SONAME "libllama.v0.5.0.so"
  INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${IG_LLAMA_INCLUDE_DIR}"
  INTERFACE_INCLUDE_DIRECTORIES "${IG_LLAMA_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "llama::ggml;llama::ggml-base")

file(GLOB IG_LLAMA_SHARED_LIBS "${IG_LLAMA_LIB_DIR}/*.so")
install(FILES ${IG_LLAMA_SHARED_LIBS} DESTINATION "${IG_LLAMA_INSTALL_LIBDIR}")
install(FILES "${IG_LLAMA_DIR}/LICENSE" DESTINATION "${IG_LLAMA_INSTALL_LIBDIR}"
        RENAME LICENSE.llama.cpp)

# Links <target> to libllama so it runs from the build tree and from an install.
# IG_LLAMA_BACKEND_DIR is the absolute build-tree lib dir; IG_LLAMA_INSTALL_BACKEND_SUBDIR is
# the same dir relative to an installed executable ("../lib/infergate").
function(ig_use_llama target)
  target_link_libraries(${target} PRIVATE llama::llama)
  target_compile_definitions(${target} PRIVATE
    IG_LLAMA_BACKEND_DIR="${IG_LLAMA_LIB_DIR}"
    IG_LLAMA_INSTALL_BACKEND_SUBDIR="../${IG_LLAMA_INSTALL_LIBDIR}")
  set_target_properties(${target} PROPERTIES
    BUILD_RPATH "${IG_LLAMA_LIB_DIR}"
    INSTALL_RPATH "$ORIGIN/../${IG_LLAMA_INSTALL_LIBDIR}")
endfunction()

add_executable(mkgguf tools/mkgguf.c tools/mkgguf_gguf.c tools/mkgguf_vocab.c)
target_include_directories(mkgguf PRIVATE tools)
target_link_libraries(mkgguf PRIVATE m)

# Wires the libllama smoke test, created by the unit-test glob, to libllama and mkgguf.
# (LeakSanitizer reports nothing inside libllama/ggml for it, so no suppressions are needed.)
function(ig_llama_smoke_test)
  if(NOT TARGET test_llama_smoke)
    return()
  endif()
  ig_use_llama(test_llama_smoke)
  target_compile_definitions(test_llama_smoke PRIVATE IG_MKGGUF_PATH="$<TARGET_FILE:mkgguf>")
  add_dependencies(test_llama_smoke mkgguf)
endfunction()
