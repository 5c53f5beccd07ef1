//! An example `wasi:http/proxy` component, made with the `wasi` crate as
//! any Rust `wasm32-wasip2` service is: a pod with `runtimeClassName:
//! wasi` serves it on its container port. Every request is answered
//! `200` with `hello from <GREETING or "wasm"> (<METHOD> <PATH>)`; a request
//! for `/fail` gets `500`; each request writes one line to stdout.

use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

wasi::http::proxy::export!(Hello);

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Other(other) => other,
            other => format!("{other:?}").to_uppercase(),
        };
        let path = request.path_with_query().unwrap_or_default();
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "wasm".to_owned());
        println!("{method} {path}");
        let status = if path == "/fail" { 500 } else { 200 };
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(status);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = body.write() {
            let _ = stream.blocking_write_and_flush(format!("hello from {greeting} ({method} {path})\n").as_bytes());
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
