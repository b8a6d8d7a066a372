// The status page at `/` on the metrics port: one self-contained HTML page (no
// external assets) whose script reads /metrics from the same origin every two
// seconds and shows the node's figures — per-tier hit ratios, command rates
// and latency quantiles, connections, the L3 write-behind queue, the archive,
// the predictor and its alerts, and any kura_cluster_* metric — for a user
// without Grafana. The page holds no data itself: whoever may read /metrics
// (basic auth, loopback only) is who sees figures; the browser asks for the
// credentials when the script's fetch is refused.
#pragma once

#include <string_view>

struct CivetCallbacks;

namespace kura::node {

/// The HTML of the page (also what `GET /` returns).
std::string_view status_page_html() noexcept;

/// civetweb callbacks that answer `GET /` and `GET /index.html` with the page
/// and leave every other request (/metrics) to prometheus-cpp's handlers.
/// Static storage: valid for the whole process.
const CivetCallbacks* status_page_callbacks() noexcept;

} // namespace kura::node
