# kura_add_test(<name> SOURCES <files...> [LIBS <targets...>] [LABELS <labels...>]
#               [TIMEOUT <seconds>])
# Builds a doctest executable into build/bin/tests and registers it with ctest.
# Every test gets KURA_BIN_DIR (build/bin) and KURA_SOURCE_DIR in its environment
# so multi-process tests can find kura-node and scripts.
function(kura_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin/tests)
  target_link_libraries(${name} PRIVATE ${T_LIBS} kura_test_main doctest::doctest)
  kura_target_defaults(${name})
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  # KURA_TEST_SLOW: how much slower this build's binaries run (the cluster
  # harness scales its nodes' timing flags and its waits by it,
  # tests/cluster/cluster_harness.hpp); the multi-process cluster tests get
  # ctest timeouts 3x as long under it.
  if(KURA_TEST_SLOW GREATER 1 AND "cluster" IN_LIST T_LABELS)
    math(EXPR T_TIMEOUT "${T_TIMEOUT} * 3")
  endif()
  set_tests_properties(${name} PROPERTIES
    TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "KURA_BIN_DIR=${CMAKE_BINARY_DIR}/bin;KURA_SOURCE_DIR=${CMAKE_SOURCE_DIR};KURA_TEST_SLOW=${KURA_TEST_SLOW}")
  if(T_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()
