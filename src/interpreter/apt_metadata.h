// What apt keeps beside its Packages lists when the system has it: AppStream (DEP-11)
// components, with the names, keywords and categories that software centres search, and the
// Translation-en files with full descriptions. Both are optional; the index works without them.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace cortex::interpreter {

// The files of `lists_dir` that hold AppStream components for `arch` (*_dep11_Components-ARCH.yml*)
// and English descriptions (*_i18n_Translation-en*), sorted; empty when apt has none.
std::vector<std::string> appstream_files(const std::string & lists_dir, const std::string & arch);
std::vector<std::string> translation_files(const std::string & lists_dir);

// package -> "Name; keywords; categories" from DEP-11 YAML `text` (the untranslated "C" values;
// categories split at their capitals: "RasterGraphics" -> "Raster Graphics"). Lines it does not
// know are skipped: one odd component must not hide the rest.
void read_appstream(const std::string & text, std::map<std::string, std::string> & out);

// package -> long description (without its first line) from a Translation file's `text`.
void read_translations(const std::string & text, std::map<std::string, std::string> & out);

}  // namespace cortex::interpreter
