import Foundation

/// containerd's list filters: `ctr ... ls 'labels."x"==y,parent==p'`. A filter is a
/// comma-separated conjunction of `FIELD`, `FIELD==VALUE`, `FIELD!=VALUE` or
/// `FIELD~=REGEX`; a list of filters matches when any one does. A field is a dotted path
/// whose parts may be double-quoted (`labels."containerd.io/snapshot.ref"`); a value may
/// be quoted too, or run to the next comma.
struct Filters: Sendable {
    struct Condition: Sendable {
        enum Test: Sendable {
            case present
            case equals(String)
            case differs(String)
            case matches(String)
        }
        var field: [String]
        var test: Test
    }

    /// Alternatives, each a conjunction.
    let alternatives: [[Condition]]

    init(_ filters: [String]) throws {
        alternatives = try filters.filter { !$0.isEmpty }.map { try Filters.parse($0) }
    }

    /// With no filters, everything matches.
    func matches(_ field: ([String]) -> String?) -> Bool {
        alternatives.isEmpty || alternatives.contains { conditions in
            conditions.allSatisfy { condition in
                let value = field(condition.field)
                switch condition.test {
                case .present: return value != nil
                case .equals(let wanted): return value == wanted
                case .differs(let unwanted): return value != unwanted
                case .matches(let pattern):
                    guard let value else { return false }
                    return value.range(of: pattern, options: .regularExpression) != nil
                }
            }
        }
    }

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    private static func parse(_ text: String) throws -> [Condition] {
        var scanner = Scanner(Array(text.unicodeScalars), text: text)
        var conditions: [Condition] = []
        repeat {
            var field = [try scanner.part()]
            while scanner.take(".") { field.append(try scanner.part()) }
            let test: Condition.Test
            if scanner.take("==") {
                test = .equals(try scanner.value())
            } else if scanner.take("!=") {
                test = .differs(try scanner.value())
            } else if scanner.take("~=") {
                let pattern = try scanner.value()
                guard (try? NSRegularExpression(pattern: pattern)) != nil else { throw ParseError(description: "filter \(text): invalid pattern \(pattern)") }
                test = .matches(pattern)
            } else {
                test = .present
            }
            conditions.append(Condition(field: field, test: test))
        } while scanner.take(",")
        guard scanner.atEnd else { throw ParseError(description: "filter \(text): unexpected text at character \(scanner.position + 1)") }
        return conditions
    }

    private struct Scanner {
        let scalars: [Unicode.Scalar]
        let text: String
        var position = 0

        init(_ scalars: [Unicode.Scalar], text: String) {
            self.scalars = scalars
            self.text = text
        }

        var atEnd: Bool { position == scalars.count }

        mutating func take(_ token: String) -> Bool {
            let wanted = Array(token.unicodeScalars)
            guard position + wanted.count <= scalars.count, Array(scalars[position..<position + wanted.count]) == wanted else { return false }
            position += wanted.count
            return true
        }

        /// A field name: a quoted string, or letters, digits, `_` and `-`.
        mutating func part() throws -> String {
            if position < scalars.count, scalars[position] == "\"" { return try quoted() }
            let start = position
            while position < scalars.count, scalars[position].properties.isAlphabetic || ("0"..."9").contains(scalars[position]) || scalars[position] == "_" || scalars[position] == "-" {
                position += 1
            }
            guard position > start else { throw ParseError(description: "filter \(text): a field name is expected at character \(position + 1)") }
            return String(String.UnicodeScalarView(scalars[start..<position]))
        }

        /// A quoted string, or everything up to the next comma.
        mutating func value() throws -> String {
            if position < scalars.count, scalars[position] == "\"" { return try quoted() }
            let start = position
            while position < scalars.count, scalars[position] != "," { position += 1 }
            return String(String.UnicodeScalarView(scalars[start..<position]))
        }

        mutating func quoted() throws -> String {
            position += 1
            var result = String.UnicodeScalarView()
            while position < scalars.count {
                let scalar = scalars[position]
                position += 1
                if scalar == "\"" { return String(result) }
                if scalar == "\\", position < scalars.count {
                    result.append(scalars[position])
                    position += 1
                } else {
                    result.append(scalar)
                }
            }
            throw ParseError(description: "filter \(text): a quoted string is not closed")
        }
    }
}
