import BlobStore

/// Any bytes as a tar stream: every member's header and content is read. Errors are the
/// expected answer to junk; crashes, hangs, leaks and unbounded allocation are the bugs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTar(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    var position = 0
    // Short reads on purpose: members straddle the reader's refills.
    let reader = TarReader { buffer in
        let n = min(buffer.count, input.count - position, 777)
        if n > 0 { buffer.baseAddress!.copyMemory(from: input.baseAddress! + position, byteCount: n) }
        position += n
        return n
    }
    do {
        while let entry = try reader.next() {
            _ = entry.path
            if entry.size <= 1 << 20 { _ = try reader.readContent(maxSize: 1 << 20) }
        }
    } catch {}
    return 0
}

// SwiftPM links an executable's entry point as `FuzzTar_main`; here it hands over to
// libFuzzer's driver, which parses the command line and calls the function above.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("FuzzTar_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, { fuzzTar($0, $1) })
}
