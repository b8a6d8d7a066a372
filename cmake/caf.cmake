# CAF 0.17.6 as Debian 12 ships it has no CMake config: build IMPORTED targets.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY NAMES caf_core REQUIRED)
find_library(CAF_IO_LIBRARY NAMES caf_io REQUIRED)
find_library(CAF_OPENSSL_LIBRARY NAMES caf_openssl REQUIRED) # TLS on cluster links
file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_ver REGEX "#define CAF_VERSION [0-9]+")
string(REGEX MATCH "[0-9]+" CAF_VERSION_NUM "${_caf_ver}")
if(NOT CAF_VERSION_NUM OR CAF_VERSION_NUM LESS 1700 OR CAF_VERSION_NUM GREATER_EQUAL 1800)
  message(FATAL_ERROR "kura needs CAF 0.17.x, found CAF_VERSION=${CAF_VERSION_NUM}")
endif()
add_library(CAF::core SHARED IMPORTED)
set_target_properties(CAF::core PROPERTIES
  IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES Threads::Threads)
add_library(CAF::io SHARED IMPORTED)
set_target_properties(CAF::io PROPERTIES
  IMPORTED_LOCATION "${CAF_IO_LIBRARY}" INTERFACE_LINK_LIBRARIES CAF::core)
if(CAF_OPENSSL_LIBRARY)
  add_library(CAF::openssl SHARED IMPORTED)
  set_target_properties(CAF::openssl PROPERTIES
    IMPORTED_LOCATION "${CAF_OPENSSL_LIBRARY}"
    INTERFACE_LINK_LIBRARIES "CAF::io;OpenSSL::SSL;OpenSSL::Crypto")
endif()
