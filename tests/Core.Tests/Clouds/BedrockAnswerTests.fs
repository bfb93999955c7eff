module CcRelay.Core.Tests.BedrockAnswerTests

open System
open System.Text
open System.Text.Json
open Xunit
open CcRelay.Core

let private utf8 (text: string) : byte array = Encoding.UTF8.GetBytes text
let private text (bytes: byte array) : string = Encoding.UTF8.GetString bytes
let private str (value: string) = EventStreamHeaderValue.String value

let private chunk (payload: string) : EventStreamMessage = {
    Headers = [
        ":event-type", str "chunk"
        ":content-type", str "application/json"
        ":message-type", str "event"
    ]
    Payload = utf8 payload
}

let private chunkOf (eventJson: string) : EventStreamMessage =
    chunk $"""{{"bytes":"{Convert.ToBase64String(utf8 eventJson)}","p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"}}"""

let private exceptionFrame (name: string) (payload: string) : EventStreamMessage = {
    Headers = [
        ":exception-type", str name
        ":content-type", str "application/json"
        ":message-type", str "exception"
    ]
    Payload = utf8 payload
}

let private expectError (frame: BedrockFrame) : int * ErrorType * string * byte array =
    match frame with
    | BedrockFrame.Error(status, errorType, message, sse) -> status, errorType, message, sse
    | other -> failwith $"expected Error, got %A{other}"

/// The envelope ErrorEnvelope writes, for an already JSON-escaped message.
let private envelopeOf (errorType: string) (escapedMessage: string) : string =
    "{\"type\":\"error\",\"error\":{\"type\":\""
    + errorType
    + "\",\"message\":\""
    + escapedMessage
    + "\"}}"

let private wire ((status, errorType): int * ErrorType) : string * int =
    ErrorEnvelope.wireName errorType, status

// ---------------------------
// errorOf (§2.7)
// ---------------------------

[<Theory>]
[<InlineData("ValidationException", "invalid_request_error", 400)>]
[<InlineData("ServiceQuotaExceededException", "rate_limit_error", 429)>]
[<InlineData("AccessDeniedException", "permission_error", 403)>]
[<InlineData("ResourceNotFoundException", "not_found_error", 404)>]
[<InlineData("ModelTimeoutException", "timeout_error", 504)>]
[<InlineData("ModelErrorException", "api_error", 500)>]
[<InlineData("ModelStreamErrorException", "api_error", 500)>]
[<InlineData("ThrottlingException", "rate_limit_error", 429)>]
[<InlineData("ModelNotReadyException", "overloaded_error", 529)>]
[<InlineData("InternalServerException", "api_error", 500)>]
[<InlineData("ServiceUnavailableException", "overloaded_error", 529)>]
[<InlineData("UnrecognizedClientException", "authentication_error", 401)>]
[<InlineData("InvalidSignatureException", "authentication_error", 401)>]
[<InlineData("ExpiredTokenException", "authentication_error", 401)>]
let ``errorOf maps every Bedrock exception of the table`` (name: string, expectedType: string, expectedStatus: int) =
    Assert.Equal((expectedType, expectedStatus), wire (BedrockAnswer.errorOf name))

[<Theory>]
[<InlineData("throttlingException")>]
[<InlineData("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")>]
[<InlineData("com.amazon.coral.service#ThrottlingException")>]
[<InlineData("aws.bedrock#ThrottlingException:http://internal.amazon.com/coral/")>]
[<InlineData(" Throttling ")>]
let ``errorOf accepts the spellings AWS uses`` (name: string) =
    Assert.Equal(("rate_limit_error", 429), wire (BedrockAnswer.errorOf name))

[<Theory>]
[<InlineData("SomethingNewException")>]
[<InlineData("")>]
[<InlineData("MissingAuthenticationTokenException")>]
let ``an unknown name is api_error 502`` (name: string) =
    Assert.Equal(None, BedrockAnswer.tryErrorOf name)
    Assert.Equal(("api_error", 502), wire (BedrockAnswer.errorOf name))

[<Theory>]
[<InlineData(400, "invalid_request_error", 400)>]
[<InlineData(401, "authentication_error", 401)>]
[<InlineData(403, "permission_error", 403)>]
[<InlineData(404, "not_found_error", 404)>]
[<InlineData(408, "invalid_request_error", 408)>]
[<InlineData(413, "request_too_large", 413)>]
[<InlineData(424, "invalid_request_error", 424)>]
[<InlineData(429, "rate_limit_error", 429)>]
[<InlineData(500, "api_error", 502)>]
[<InlineData(503, "api_error", 502)>]
[<InlineData(200, "api_error", 502)>]
let ``errorOfStatus keeps 4xx and reports 5xx as 502`` (status: int, expectedType: string, expectedStatus: int) =
    Assert.Equal((expectedType, expectedStatus), wire (BedrockAnswer.errorOfStatus status))

// ---------------------------
// errorBody
// ---------------------------

let private errorBody (status: int) (header: string option) (body: string) : int * string =
    let status, bytes = BedrockAnswer.errorBody status header (ReadOnlySpan(utf8 body))
    status, text bytes

[<Fact>]
let ``errorBody turns a throttling answer into a rate_limit_error with the message verbatim`` () =
    let status, body =
        errorBody
            429
            (Some "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")
            """{"message":"Too many requests, please wait before trying again."}"""

    Assert.Equal(429, status)

    Assert.Equal(
        """{"type":"error","error":{"type":"rate_limit_error","message":"Too many requests, please wait before trying again."}}""",
        body
    )

[<Fact>]
let ``errorBody keeps any message text, quotes and non-ASCII included`` () =
    let message =
        "Input is too long for requested model: \"é\" <100> tokens\nsecond line"

    let status, body =
        errorBody 400 (Some "ValidationException") (JsonSerializer.Serialize {| Message = message |})

    Assert.Equal(400, status)
    use json = JsonDocument.Parse body
    let error = json.RootElement.GetProperty "error"
    Assert.Equal("invalid_request_error", error.GetProperty("type").GetString())
    Assert.Equal(message, error.GetProperty("message").GetString())

[<Fact>]
let ``errorBody maps by the body's __type when the header is missing`` () =
    let status, body =
        errorBody 400 None """{"__type":"com.amazon.coral.service#ServiceQuotaExceededException","message":"quota"}"""

    Assert.Equal(429, status)
    Assert.Contains("\"rate_limit_error\"", body)

[<Theory>]
[<InlineData(403, "permission_error", 403)>]
[<InlineData(418, "invalid_request_error", 418)>]
[<InlineData(500, "api_error", 502)>]
let ``errorBody without a known name maps by status`` (httpStatus: int, expectedType: string, expectedStatus: int) =
    let status, body =
        errorBody httpStatus (Some "BrandNewException") """{"message":"m"}"""

    Assert.Equal(expectedStatus, status)

    Assert.Equal(envelopeOf expectedType "m", body)

[<Fact>]
let ``errorBody passes an Anthropic envelope through unchanged with the mapped status`` () =
    let envelope =
        """{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"""

    Assert.Equal((529, envelope), errorBody 503 (Some "ServiceUnavailableException") envelope)

[<Fact>]
let ``errorBody uses a body that is not JSON as the message, and the name when there is no body`` () =
    Assert.Equal(
        (502, """{"type":"error","error":{"type":"api_error","message":"Bad Gateway"}}"""),
        errorBody 502 None "  Bad Gateway\n"
    )

    Assert.Equal(
        (504, """{"type":"error","error":{"type":"timeout_error","message":"ModelTimeoutException"}}"""),
        errorBody 408 (Some "ModelTimeoutException") ""
    )

    Assert.Equal(
        (502, """{"type":"error","error":{"type":"api_error","message":"Bedrock answered HTTP 503"}}"""),
        errorBody 503 None "{}"
    )

// ---------------------------
// ofMessage: chunks
// ---------------------------

[<Fact>]
let ``a chunk becomes the SSE of its event, JSON byte for byte`` () =
    let json =
        """{"type":"content_block_delta", "index":0,"delta":{"type":"text_delta","text":"caf\u00e9 é \"x\""}}"""

    match BedrockAnswer.ofMessage (chunkOf json) with
    | BedrockFrame.Event(sse, eventType) ->
        Assert.Equal("content_block_delta", eventType)
        Assert.Equal<byte array>(Array.concat [ "event: content_block_delta\ndata: "B; utf8 json; "\n\n"B ], sse)
    | other -> failwith $"expected Event, got %A{other}"

[<Fact>]
let ``the message_stop with Bedrock's invocation metrics goes out as it is`` () =
    let json =
        """{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":3,"invocationLatency":456,"firstByteLatency":123}}"""

    match BedrockAnswer.ofMessage (chunkOf json) with
    | BedrockFrame.Event(sse, "message_stop") -> Assert.Equal("event: message_stop\ndata: " + json + "\n\n", text sse)
    | other -> failwith $"expected Event, got %A{other}"

[<Fact>]
let ``line breaks between JSON tokens become spaces so the event stays one data line`` () =
    let json = "{\r\n  \"type\": \"ping\"\n}"

    match BedrockAnswer.ofMessage (chunkOf json) with
    | BedrockFrame.Event(sse, "ping") -> Assert.Equal("event: ping\ndata: {    \"type\": \"ping\" }\n\n", text sse)
    | other -> failwith $"expected Event, got %A{other}"

[<Theory>]
[<InlineData("""{"notype":1}""")>]
[<InlineData("""{"type":7}""")>]
[<InlineData("""{"type":""}""")>]
[<InlineData("""{"inner":{"type":"ping"}}""")>]
[<InlineData("""[{"type":"ping"}]""")>]
[<InlineData("\"ping\"")>]
let ``a chunk whose event has no top-level type is skipped`` (json: string) =
    Assert.Equal(BedrockFrame.Skip, BedrockAnswer.ofMessage (chunkOf json))

[<Fact>]
let ``other event types and unknown message types are skipped`` () =
    let other = {
        chunkOf """{"type":"ping"}""" with
            Headers = [ ":event-type", str "metadata"; ":message-type", str "event" ]
    }

    let unknown = {
        chunkOf """{"type":"ping"}""" with
            Headers = [ ":event-type", str "chunk"; ":message-type", str "future" ]
    }

    let untyped = {
        chunkOf """{"type":"ping"}""" with
            Headers = []
    }

    for message in [ other; unknown; untyped ] do
        Assert.Equal(BedrockFrame.Skip, BedrockAnswer.ofMessage message)

[<Theory>]
[<InlineData("not json", "payload is not JSON")>]
[<InlineData("""{"bytes":"e30="} trailing""", "payload is not JSON")>]
[<InlineData("[1]", "not a JSON object")>]
[<InlineData("""{"p":"x"}""", "no bytes")>]
[<InlineData("""{"bytes":"%%%"}""", "not base64")>]
[<InlineData("""{"bytes":"bm90IGpzb24="}""", "event is not JSON")>]
let ``a malformed chunk is an api_error`` (payload: string, reasonPart: string) =
    let status, errorType, message, sse =
        expectError (BedrockAnswer.ofMessage (chunk payload))

    Assert.Equal((502, ErrorType.Api), (status, errorType))
    Assert.StartsWith("malformed chunk from Bedrock: ", message)
    Assert.Contains(reasonPart, message)
    Assert.Equal<byte array>(ErrorEnvelope.toSseEvent ErrorType.Api message, sse)

// ---------------------------
// ofMessage: exceptions and errors
// ---------------------------

[<Theory>]
[<InlineData("throttlingException", 429, "rate_limit_error")>]
[<InlineData("internalServerException", 500, "api_error")>]
[<InlineData("modelStreamErrorException", 500, "api_error")>]
[<InlineData("validationException", 400, "invalid_request_error")>]
[<InlineData("modelTimeoutException", 504, "timeout_error")>]
[<InlineData("serviceUnavailableException", 529, "overloaded_error")>]
[<InlineData("somethingElseException", 502, "api_error")>]
let ``an exception frame is an Error with its mapping and message``
    (name: string, expectedStatus: int, expectedType: string)
    =
    let payload = """{"message":"Model stream \"failed\"","originalStatusCode":500}"""

    let status, errorType, message, sse =
        expectError (BedrockAnswer.ofMessage (exceptionFrame name payload))

    Assert.Equal((expectedType, expectedStatus), wire (status, errorType))
    Assert.Equal("Model stream \"failed\"", message)

    let envelope = envelopeOf expectedType "Model stream \\u0022failed\\u0022"

    Assert.Equal("event: error\ndata: " + envelope + "\n\n", text sse)

[<Fact>]
let ``an exception's message may be Message, and falls back to the exception name`` () =
    let _, _, capital, _ =
        expectError (BedrockAnswer.ofMessage (exceptionFrame "throttlingException" """{"Message":"slow down"}"""))

    let _, _, none, _ =
        expectError (BedrockAnswer.ofMessage (exceptionFrame "throttlingException" "not json"))

    Assert.Equal("slow down", capital)
    Assert.Equal("throttlingException", none)

[<Fact>]
let ``an error message is an Error from its error-code and error-message headers`` () =
    let message = {
        Headers = [
            ":error-code", str "ThrottlingException"
            ":error-message", str "Rate exceeded"
            ":message-type", str "error"
        ]
        Payload = [||]
    }

    let status, errorType, text, sse = expectError (BedrockAnswer.ofMessage message)
    Assert.Equal((429, ErrorType.RateLimit, "Rate exceeded"), (status, errorType, text))
    Assert.Equal<byte array>(ErrorEnvelope.toSseEvent ErrorType.RateLimit "Rate exceeded", sse)

// ---------------------------
// The relay as a Bedrock endpoint
// ---------------------------

[<Fact>]
let ``chunkOfEvent writes the chunk frame Bedrock sends`` () =
    let json = """{"type":"ping"}"""
    let message = BedrockAnswer.chunkOfEvent (ReadOnlySpan(utf8 json))

    Assert.Equal<(string * EventStreamHeaderValue) list>(
        [
            ":event-type", str "chunk"
            ":content-type", str "application/json"
            ":message-type", str "event"
        ],
        message.Headers
    )

    Assert.Equal("""{"bytes":"eyJ0eXBlIjoicGluZyJ9"}""", text message.Payload)

[<Theory>]
[<InlineData("")>]
[<InlineData("{\"type\":\"a\"}")>]
[<InlineData("{\"type\":\"ab\"}")>]
[<InlineData("{\"type\":\"abc\"}")>]
let ``chunkOfEvent then ofMessage gives the event back`` (json: string) =
    let expected =
        if json = "" then
            BedrockAnswer.ofMessage (chunk """{"bytes":""}""")
        else
            BedrockFrame.Event(
                utf8 $"event: {json.Substring(9, json.Length - 11)}\ndata: {json}\n\n",
                json.Substring(9, json.Length - 11)
            )

    Assert.Equal(expected, BedrockAnswer.ofMessage (BedrockAnswer.chunkOfEvent (ReadOnlySpan(utf8 json))))

[<Theory>]
[<InlineData("RateLimit", "throttlingException")>]
[<InlineData("Api", "internalServerException")>]
[<InlineData("Overloaded", "serviceUnavailableException")>]
[<InlineData("InvalidRequest", "validationException")>]
[<InlineData("RequestTooLarge", "validationException")>]
[<InlineData("Timeout", "modelTimeoutException")>]
[<InlineData("Authentication", "unrecognizedClientException")>]
[<InlineData("Permission", "accessDeniedException")>]
[<InlineData("NotFound", "resourceNotFoundException")>]
let ``exceptionOf writes the exception frame AWS SDKs know`` (errorTypeName: string, expectedName: string) =
    let errorType =
        match errorTypeName with
        | "RateLimit" -> ErrorType.RateLimit
        | "Api" -> ErrorType.Api
        | "Overloaded" -> ErrorType.Overloaded
        | "InvalidRequest" -> ErrorType.InvalidRequest
        | "RequestTooLarge" -> ErrorType.RequestTooLarge
        | "Timeout" -> ErrorType.Timeout
        | "Authentication" -> ErrorType.Authentication
        | "Permission" -> ErrorType.Permission
        | _ -> ErrorType.NotFound

    let message = BedrockAnswer.exceptionOf errorType "slow \"down\""

    Assert.Equal<(string * EventStreamHeaderValue) list>(
        [
            ":exception-type", str expectedName
            ":content-type", str "application/json"
            ":message-type", str "exception"
        ],
        message.Headers
    )

    Assert.Equal("""{"message":"slow \u0022down\u0022"}""", text message.Payload)

    // and it reads back as the same class of error
    let _, readBack, text, _ = expectError (BedrockAnswer.ofMessage message)
    Assert.Equal("slow \"down\"", text)

    let expected =
        if errorType = ErrorType.RequestTooLarge then
            ErrorType.InvalidRequest
        else
            errorType

    Assert.Equal(expected, readBack)

[<Fact>]
let ``an event nested deeper than 64 levels still goes out`` () =
    let json =
        "{\"type\":\"message_start\",\"x\":"
        + String.replicate 200 "["
        + String.replicate 200 "]"
        + "}"

    match BedrockAnswer.ofMessage (chunkOf json) with
    | BedrockFrame.Event(sse, "message_start") -> Assert.Equal("event: message_start\ndata: " + json + "\n\n", text sse)
    | other -> failwith $"expected Event, got %A{other}"
