import Foundation

/// The human-readable result: one row per store size, so the removal figures sit side by
/// side (they should match), then the many-containers line.
enum ReportTable {
    static func render(_ report: GCBenchReport) -> String {
        var out: [String] = []
        if !report.removal.isEmpty {
            out.append("Remove one container + gc (median of \(report.repeats); frees its diff and its anonymous volume's snapshot)")
            out.append(row(["blobs", "fill s", "fill blob/s", "packs", "remove ms", "collect ms", "total ms", "min-max ms", "freed (blobs/chunks/bytes)"]))
            for f in report.removal {
                let totals = f.runs.map(\.totalMs)
                let freed = f.runs.last.map { "\($0.blobsFreed)/\($0.chunksFreed)/\(Log.bytes($0.bytesFreed))" } ?? "-"
                out.append(row([
                    "\(f.blobs)", fmt(f.fill.milliseconds / 1000, 1), fmt(f.fill.blobsPerSecond, 0), "\(f.packs)",
                    fmt(f.medianRemoveMs, 2), fmt(f.medianCollectMs, 2), fmt(f.medianTotalMs, 2),
                    fmt(totals.min() ?? 0, 2) + "-" + fmt(totals.max() ?? 0, 2), freed,
                ]))
            }
        }
        if let m = report.many {
            if !out.isEmpty { out.append("") }
            out.append("Remove \(m.containers) containers (one transaction each), then one gc")
            out.append(row(["containers", "setup s", "remove all ms", "per rm ms", "collect ms", "per blob µs", "packs compacted", "freed (blobs/chunks/bytes)", "blobs left"]))
            out.append(row([
                "\(m.containers)", fmt(m.setupMs / 1000, 1), fmt(m.removeAllMs, 0), fmt(m.removeAllMs / Double(max(1, m.containers)), 3),
                fmt(m.collectMs, 0), fmt(m.collectMs * 1000 / Double(max(1, m.blobsFreed)), 1),
                "\(m.packsCompacted)", "\(m.blobsFreed)/\(m.chunksFreed)/\(Log.bytes(m.bytesFreed))", "\(m.blobsLeft)",
            ]))
        }
        out.append("")
        out.append(String(format: "%d cores, %d fill workers, whole run %.1f s", report.cores, report.workers, report.totalSeconds))
        return out.joined(separator: "\n")
    }

    private static func fmt(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }

    /// Right-aligned columns of fixed width (the last one left-aligned).
    private static func row(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in
            i == cells.count - 1 ? c : String(repeating: " ", count: max(0, 12 - c.count)) + c
        }.joined(separator: " ")
    }
}
