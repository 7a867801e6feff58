import Foundation

/// Progress goes to stderr, so stdout holds only the table (or the JSON).
enum Log {
    static func progress(_ line: String) {
        FileHandle.standardError.write(Data(("[blobbench] " + line + "\n").utf8))
    }

    /// 1536 -> "1.5 KiB".
    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.1f ", value) + units[unit]
    }
}
