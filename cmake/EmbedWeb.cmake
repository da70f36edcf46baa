# The dashboard's files (web/) embedded into the binary.
#
# Included from CMakeLists.txt: ig_embed_web(TARGET) adds a C file generated at build time
# (never committed) to TARGET, rebuilt whenever a file under web/ or this script changes.
# Run as a script (cmake -DWEB_DIR=... -DOUT=... -P EmbedWeb.cmake) it writes that file:
# every file's bytes, its path under web/, its Content-Type (from the extension; an unknown
# extension fails the build rather than serve the wrong type) and an ETag from its SHA-256,
# as the table declared in src/gateway/gw_ui_assets.h.

if(CMAKE_SCRIPT_MODE_FILE)
  if(NOT EXISTS "${WEB_DIR}/index.html")
    message(FATAL_ERROR "EmbedWeb: ${WEB_DIR}/index.html is missing")
  endif()
  set(types_html "text/html; charset=utf-8")
  set(types_css "text/css; charset=utf-8")
  set(types_js "text/javascript; charset=utf-8")
  set(types_json "application/json")
  set(types_svg "image/svg+xml")
  set(types_png "image/png")
  set(types_ico "image/x-icon")
  set(types_txt "text/plain; charset=utf-8")

  set(row "") # 24 bytes a line (CMake's regular expressions have no {n})
  foreach(k RANGE 1 24)
    string(APPEND row "0x..,")
  endforeach()
  file(GLOB_RECURSE files RELATIVE "${WEB_DIR}" "${WEB_DIR}/*")
  list(SORT files)
  set(arrays "")
  set(table "")
  set(i 0)
  foreach(name ${files})
    if(NOT name MATCHES "^[A-Za-z0-9._/-]+$" OR name MATCHES "(^|/)\\.")
      message(FATAL_ERROR "EmbedWeb: web/${name}: use letters, digits, '.', '_', '-' and '/'")
    endif()
    string(REGEX MATCH "[^.]+$" ext "${name}")
    string(TOLOWER "${ext}" ext)
    if(NOT DEFINED types_${ext})
      message(FATAL_ERROR "EmbedWeb: web/${name}: no Content-Type known for .${ext}")
    endif()
    file(READ "${WEB_DIR}/${name}" hex HEX)
    file(SHA256 "${WEB_DIR}/${name}" sha)
    string(SUBSTRING "${sha}" 0 20 sha)
    string(LENGTH "${hex}" hex_len)
    math(EXPR size "${hex_len} / 2")
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
    string(REGEX REPLACE "(${row})" "\\1\n" bytes "${bytes}")
    if(size EQUAL 0)
      set(bytes "0")
    endif()
    string(APPEND arrays "static const unsigned char asset_${i}[] = {\n${bytes}};\n")
    string(APPEND table "    {\"${name}\", \"${types_${ext}}\", \"\\\"${sha}\\\"\", asset_${i}, ${size}},\n")
    math(EXPR i "${i} + 1")
  endforeach()

  set(text "/* Generated from web/ by cmake/EmbedWeb.cmake at build time; do not edit. */\n")
  string(APPEND text "#include \"gw_ui_assets.h\"\n\n${arrays}\n")
  string(APPEND text "const struct gw_ui_asset gw_ui_assets[] = {\n${table}};\n\n")
  string(APPEND text "const size_t gw_ui_n_assets = ${i};\n")
  file(WRITE "${OUT}" "${text}")
  return()
endif()

set(IG_EMBED_WEB_SCRIPT ${CMAKE_CURRENT_LIST_FILE})

# Adds the generated C file holding web/ to TARGET.
function(ig_embed_web target)
  set(web_dir ${CMAKE_SOURCE_DIR}/web)
  set(out ${CMAKE_BINARY_DIR}/generated/gw_ui_assets.c)
  file(GLOB_RECURSE web_files CONFIGURE_DEPENDS ${web_dir}/*)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DWEB_DIR=${web_dir} -DOUT=${out} -P ${IG_EMBED_WEB_SCRIPT}
    DEPENDS ${web_files} ${IG_EMBED_WEB_SCRIPT}
    COMMENT "Embedding the dashboard (web/)"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
endfunction()
