# Turns data/catalog.json into a C++ source file, so that the catalog needs no file at run time.
file(READ ${INPUT} CONTENT)
file(WRITE ${OUTPUT} "// Generated from data/catalog.json by cmake/embed_catalog.cmake.\nnamespace cortex::models {\nextern const char * const kBuiltinCatalogJson;\nconst char * const kBuiltinCatalogJson = R\"CORTEXCATALOG(${CONTENT})CORTEXCATALOG\";\n}\n")
