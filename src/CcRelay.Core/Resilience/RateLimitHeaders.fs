namespace CcRelay.Core

open System
open System.Globalization

/// One `anthropic-ratelimit-<kind>-{limit,remaining,reset}` triple; each part is None when absent or
/// unparsable.
type RateLimitWindow = {
    Limit: int64 option
    Remaining: int64 option
    /// How long until the bucket is full again, from the wall-clock time the headers were read.
    ResetIn: TimeSpan option
}

/// The rate-limit headers of one upstream response (protocols.md §1.8).
type RateLimitHeaders = {
    Requests: RateLimitWindow
    /// The most restrictive token limit in effect (`-remaining` is rounded to the nearest thousand).
    Tokens: RateLimitWindow
    InputTokens: RateLimitWindow
    OutputTokens: RateLimitWindow
    /// `retry-after`, when present and valid.
    RetryAfter: TimeSpan option
}

/// Parsing `anthropic-ratelimit-*` and `retry-after`.
[<RequireQualifiedAccess>]
module RateLimitHeaders =

    /// A window with nothing known.
    let emptyWindow: RateLimitWindow = {
        Limit = None
        Remaining = None
        ResetIn = None
    }

    /// Headers with nothing known (a response without rate-limit headers).
    let empty: RateLimitHeaders = {
        Requests = emptyWindow
        Tokens = emptyWindow
        InputTokens = emptyWindow
        OutputTokens = emptyWindow
        RetryAfter = None
    }

    /// Whether any rate-limit information is present.
    let isEmpty (headers: RateLimitHeaders) : bool =
        obj.ReferenceEquals(headers, empty) || headers = empty

    /// When no `retry-after` is given for a 429.
    let defaultCooldown: TimeSpan = TimeSpan.FromSeconds 60.0

    /// The longest cooldown a `retry-after` can impose on a key: a bogus or hostile value must not park
    /// a key for hours.
    let maxCooldown: TimeSpan = TimeSpan.FromSeconds 300.0

    let private rfc3339Formats: string array = [|
        "yyyy-MM-dd'T'HH:mm:ssK"
        "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK"
        "yyyy-MM-dd' 'HH:mm:ssK"
        "yyyy-MM-dd' 'HH:mm:ss.FFFFFFFK"
    |]

    /// Parses an RFC 3339 date-time (`2026-05-01T12:00:30Z`, `…+02:00`, fractional seconds, `t`/`z` in
    /// either case). No offset is not RFC 3339 and gives None.
    let tryParseRfc3339 (text: string) : DateTimeOffset option =
        let text = text.Trim().ToUpperInvariant()

        // `K` also accepts "no offset"; RFC 3339 requires one.
        let hasOffset =
            text.EndsWith 'Z'
            || (text.Length > 6 && (text[text.Length - 6] = '+' || text[text.Length - 6] = '-'))

        match
            DateTimeOffset.TryParseExact(
                text,
                rfc3339Formats,
                CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal
            )
        with
        | true, value when hasOffset -> Some value
        | _ -> None

    /// Parses `retry-after`: delay-seconds (a non-negative integer) or an HTTP-date (RFC 9110 §10.2.3),
    /// relative to `wallNow`. A date in the past is zero.
    let tryParseRetryAfter (wallNow: DateTimeOffset) (value: string | null) : TimeSpan option =
        match value with
        | null -> None
        | value ->
            let text = value.Trim()

            match Int64.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture) with
            | true, seconds -> Some(TimeSpan.FromSeconds(float (min seconds 86_400L)))
            | _ ->
                // "r" is the IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`); the obsolete forms are rare.
                match
                    DateTimeOffset.TryParseExact(
                        text,
                        [| "r"; "dddd, dd-MMM-yy HH:mm:ss 'GMT'"; "ddd MMM d HH:mm:ss yyyy" |],
                        CultureInfo.InvariantCulture,
                        DateTimeStyles.AssumeUniversal ||| DateTimeStyles.AllowWhiteSpaces
                    )
                with
                | true, date -> Some(max TimeSpan.Zero (date - wallNow))
                | _ -> None

    /// The cooldown a 429 puts on a key: `retry-after` (default 60 s), at least 1 s, at most 300 s.
    let cooldown (retryAfter: TimeSpan option) : TimeSpan =
        retryAfter
        |> Option.defaultValue defaultCooldown
        |> max (TimeSpan.FromSeconds 1.0)
        |> min maxCooldown

    let private number (value: string | null) : int64 option =
        match value with
        | null -> None
        | value ->
            match Int64.TryParse(value.Trim(), NumberStyles.None, CultureInfo.InvariantCulture) with
            | true, n -> Some n
            | _ -> None

    /// The `-limit`, `-remaining` and `-reset` header names of one window kind, built once.
    let private names (kind: string) =
        let prefix = "anthropic-ratelimit-" + kind
        struct (prefix + "-limit", prefix + "-remaining", prefix + "-reset")

    let private requestsNames = names "requests"
    let private tokensNames = names "tokens"
    let private inputTokensNames = names "input-tokens"
    let private outputTokensNames = names "output-tokens"

    let private window (wallNow: DateTimeOffset) (lookup: string -> string | null) struct (limit, remaining, reset) =
        match lookup limit, lookup remaining, lookup reset with
        | null, null, null -> emptyWindow
        | limit, remaining, reset -> {
            Limit = number limit |> Option.filter (fun n -> n > 0L)
            Remaining = number remaining
            ResetIn =
                match reset with
                | null -> None
                | text ->
                    tryParseRfc3339 text
                    |> Option.map (fun reset -> max TimeSpan.Zero (reset - wallNow))
          }

    /// Parses the headers of one response. `lookup` returns a header's value (null when absent; header
    /// names are passed in lower case); `wallNow` is the wall-clock time of the response, against which
    /// the RFC 3339 resets and HTTP-dates are measured.
    let parse (wallNow: DateTimeOffset) (lookup: string -> string | null) : RateLimitHeaders =
        let requests = window wallNow lookup requestsNames
        let tokens = window wallNow lookup tokensNames
        let inputTokens = window wallNow lookup inputTokensNames
        let outputTokens = window wallNow lookup outputTokensNames
        let retryAfter = tryParseRetryAfter wallNow (lookup "retry-after")

        // a response without any (most error answers, every non-Anthropic provider): the shared empty value
        if
            obj.ReferenceEquals(requests, emptyWindow)
            && obj.ReferenceEquals(tokens, emptyWindow)
            && obj.ReferenceEquals(inputTokens, emptyWindow)
            && obj.ReferenceEquals(outputTokens, emptyWindow)
            && retryAfter.IsNone
        then
            empty
        else
            {
                Requests = requests
                Tokens = tokens
                InputTokens = inputTokens
                OutputTokens = outputTokens
                RetryAfter = retryAfter
            }

/// The parser for C# callers.
[<AbstractClass; Sealed>]
type RateLimitHeaderParser =

    /// Parses the headers of one response; `header` returns a header's value or null.
    static member Parse(wallNow: DateTimeOffset, header: Func<string, string | null>) : RateLimitHeaders =
        RateLimitHeaders.parse wallNow header.Invoke
