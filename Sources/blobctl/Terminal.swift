import BlobStore
import Foundation

/// Output helpers: JSON for scripts, aligned text and byte sizes for people, and a progress
/// line on stderr when it is a terminal.
enum Terminal {
    static var stderrIsTTY: Bool { isatty(2) == 1 }

    static func error(_ message: String) {
        FileHandle.standardError.write(Data("blobctl: \(message)\n".utf8))
    }

    /// Something worth knowing that is not a result: on stderr, so stdout stays parseable.
    static func note(_ message: String) {
        FileHandle.standardError.write(Data("note: \(message)\n".utf8))
    }

    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    /// 1536 -> "1.5 KiB".
    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func ratio(_ a: UInt64, _ b: UInt64) -> Double {
        b == 0 ? 1 : Double(a) / Double(b)
    }

    /// Left-aligned columns.
    static func table(_ rows: [[String]]) -> String {
        guard let width = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: width)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// A one-line progress display on stderr, redrawn at most five times a second, shown only
/// when stderr is a terminal.
final class ProgressLine: @unchecked Sendable {
    private let label: String
    private let total: UInt64?
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let enabled: Bool

    init(_ label: String, total: UInt64? = nil) {
        self.label = label
        self.total = total
        enabled = Terminal.stderrIsTTY
    }

    func update(_ done: UInt64) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.2 else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(start), 0.001)
        let rate = Terminal.bytes(UInt64(Double(done) / elapsed)) + "/s"
        var line = "\(label) \(Terminal.bytes(done))"
        if let total, total > 0 {
            line += String(format: " / %@ (%.0f%%)", Terminal.bytes(total), 100 * Double(done) / Double(total))
        }
        line += "  \(rate)"
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
    }

    func finish() {
        guard enabled, lastDraw != .distantPast else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
