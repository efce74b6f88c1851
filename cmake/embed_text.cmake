# Turns a data file (data/catalog.json, data/intents.json) into a C++ source file defining
# `const char * const <NAMESPACE>::<SYMBOL>`, so that the library needs no data file at run time.
file(READ ${INPUT} CONTENT)
file(WRITE ${OUTPUT} "// Generated from ${INPUT} by cmake/embed_text.cmake.\nnamespace ${NAMESPACE} {\nextern const char * const ${SYMBOL};\nconst char * const ${SYMBOL} = R\"CORTEXDATA(${CONTENT})CORTEXDATA\";\n}\n")
