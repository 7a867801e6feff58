import Hummingbird

/// Caps the API requests in progress, counting a request until its response body has been
/// written (a blob download holds its place while it streams). Beyond the cap the answer
/// is 503 with `Retry-After` at once: memory and threads stay bounded however many
/// clients arrive. `/metrics` is not counted, so a busy server can still be watched.
struct LoadSheddingMiddleware<Context: RequestContext>: RouterMiddleware {
    let gate: AdmissionGate

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.uri.path.hasPrefix("/v2") else { return try await next(request, context) }
        guard gate.tryEnter() else {
            throw RegistryError.busy(.unavailable, "the registry is busy (\(gate.limit) requests in progress); retry shortly", retryAfter: 1, reason: "requests")
        }
        let ticket = AdmissionTicket(gate)
        var response = try await next(request, context)
        guard response.body.contentLength != 0 else { return response }
        let body = response.body
        // The ticket lives as long as the body: until it is written, or dropped unwritten.
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            try await body.write(writer)
            _ = ticket
        }
        return response
    }
}
