// What an embedded cluster member (actors/kura.hpp) takes from kura's node
// layer: the command execution that runs the commands its peers forward to
// it (exec_owned). actors/ may not depend on node/, so actors/kura.cpp
// declares the hook below as a weak symbol and uses it when it is linked;
// the kura_cluster library makes every program that links it keep this file
// (node/CMakeLists.txt: -Wl,--undefined=kura_embedded_cluster_exec), so an
// application that links kura_cluster needs to set nothing.
// Thread safety: a plain function, called once per spawn_kura.
#include "actors/cluster.hpp"
#include "node/cluster_routing.hpp"

extern "C" void kura_embedded_cluster_exec(kura::actors::exec_fn* out) {
  *out = kura::node::exec_owned;
}
