namespace CcRelay.Core

open System

/// One completed request, as the statistics window keeps it.
type RequestSample = {
    /// When it ended, on the relay's monotonic clock.
    At: TimeSpan
    /// The provider that answered (or was last tried); `none` when none was chosen.
    Provider: string
    /// The status the client got.
    Status: int
    /// `RequestStats.errorClass`; empty on success.
    ErrorClass: string
    /// Start to last byte.
    LatencyMs: float
    /// Start to the upstream's response headers; negative when none came.
    TtfbMs: float
    InputTokens: int64
    OutputTokens: int64
    CostUsd: decimal
    /// The relay answered it itself, calling no upstream (`LocalAnswer`): not the provider's traffic.
    Local: bool
    /// The providers of the attempts that failed before the answer, in order, each caught by a failover (a
    /// provider tried twice appears twice): each counts against the provider that failed it.
    FailedAttempts: string list
} with

    /// A sample, as C# makes one (`failedAttempts` null: none failed).
    static member Create
        (
            at: TimeSpan,
            provider: string,
            status: int,
            errorClass: string,
            latencyMs: float,
            ttfbMs: float,
            inputTokens: int64,
            outputTokens: int64,
            costUsd: decimal,
            local: bool,
            failedAttempts: Collections.Generic.IEnumerable<string> | null
        ) : RequestSample = {
        At = at
        Provider = provider
        Status = status
        ErrorClass = errorClass
        LatencyMs = latencyMs
        TtfbMs = ttfbMs
        InputTokens = inputTokens
        OutputTokens = outputTokens
        CostUsd = costUsd
        Local = local
        FailedAttempts =
            match failedAttempts with
            | null -> []
            | failed -> List.ofSeq failed
    }

/// Nearest-rank percentiles of a set of durations, in ms (0 when the set is empty).
type Percentiles = { P50: float; P95: float; P99: float }

/// One provider's traffic over the window.
type ProviderWindow = {
    Provider: string
    Requests: int
    RequestsPerSecond: float
    Errors: int
    /// Errors per second by `errorClass`, by class name.
    ErrorsPerSecond: (string * float) list
    Latency: Percentiles
    /// Over the requests that got response headers.
    Ttfb: Percentiles
    InputTokens: int64
    OutputTokens: int64
    CostUsd: decimal
    /// Attempts of this provider that failed and were followed by another (`RequestSample.FailedAttempts`); they
    /// are among `Errors` (class `failed_over`) but not among `Requests`, which counts the requests it answered.
    FailedAttempts: int
    /// Every attempt of this provider: the requests it answered and its failed attempts (`Requests + FailedAttempts`).
    Attempts: int
}

/// Sliding-window statistics of completed requests (`WatchStats`). Pure: the host keeps the samples and
/// passes them with `now`; a sample belongs to the window while it is younger than the window.
[<RequireQualifiedAccess>]
module RequestStats =

    /// The default window.
    let defaultWindow: TimeSpan = TimeSpan.FromSeconds 60.0

    /// The class of a failed request, from the status the client got and the result's wire name
    /// (`RequestResult.wireName`); empty for a success. A client that left is `client_aborted` whatever
    /// its status.
    let errorClass (status: int) (result: string) : string =
        if result = "client_aborted" then
            "client_aborted"
        elif status < 400 && result = "ok" then
            ""
        elif status = 429 then
            "rate_limit"
        elif status = 529 || status = 503 then
            "overloaded"
        elif status = 504 || status = 408 || result = "timeout_error" then
            "timeout"
        elif status = 401 || status = 403 then
            "auth"
        elif status >= 500 || status < 400 then
            "server"
        else
            "client"

    /// Whether a sample is in the window ending at `now`: younger than `window` (a sample exactly `window`
    /// old is forgotten), and not from the future.
    let inWindow (now: TimeSpan) (window: TimeSpan) (sample: RequestSample) : bool =
        sample.At <= now && now - sample.At < window

    /// The nearest-rank `q` percentile (0 < q <= 1) of ascending values: the smallest value with at least
    /// `q` of all values at or below it. 0 for no values.
    let percentile (q: float) (sorted: float array) : float =
        if sorted.Length = 0 then
            0.0
        else
            let rank = int (Math.Ceiling(q * float sorted.Length - 1e-9))
            sorted[(max 1 (min sorted.Length rank)) - 1]

    let private percentiles (values: float array) : Percentiles =
        let sorted = Array.sort values

        {
            P50 = percentile 0.50 sorted
            P95 = percentile 0.95 sorted
            P99 = percentile 0.99 sorted
        }

    /// The error class of a failed attempt caught by a failover (`ProviderWindow.FailedAttempts`).
    let failedOverClass: string = "failed_over"

    /// Per provider (by name), the window ending at `now`. Rates are per second over the window, or over
    /// `elapsed` (how long the relay has run) while that is shorter, and at least one second. A request counts
    /// under the provider that answered it (or was last tried), and each of its failed attempts counts as an
    /// error of the provider that failed it: a provider whose every failure a failover caught does not look
    /// healthy. A request the relay answered itself (`Local`) is no provider's traffic; its failed attempts are.
    let summarize
        (now: TimeSpan)
        (window: TimeSpan)
        (elapsed: TimeSpan)
        (samples: RequestSample seq)
        : ProviderWindow list =
        let seconds = max 1.0 (min window.TotalSeconds elapsed.TotalSeconds)
        let recent = samples |> Seq.filter (inWindow now window) |> Array.ofSeq

        let answered =
            recent
            |> Array.filter (fun s -> not s.Local)
            |> Array.groupBy _.Provider
            |> Map.ofArray

        let failed =
            recent
            |> Array.collect (fun s -> Array.ofList s.FailedAttempts)
            |> Array.countBy id
            |> Map.ofArray

        Seq.append (Map.keys answered) (Map.keys failed)
        |> Seq.distinct
        |> Seq.sort
        |> Seq.map (fun provider ->
            let group = answered |> Map.tryFind provider |> Option.defaultValue [||]
            let failedHere = failed |> Map.tryFind provider |> Option.defaultValue 0
            let errors = group |> Array.filter (fun s -> s.ErrorClass <> "")

            let classes =
                Array.append (errors |> Array.map _.ErrorClass) (Array.create failedHere failedOverClass)

            {
                Provider = provider
                Requests = group.Length
                RequestsPerSecond = float group.Length / seconds
                Errors = classes.Length
                ErrorsPerSecond =
                    classes
                    |> Array.countBy id
                    |> Array.sortBy fst
                    |> Array.map (fun (c, n) -> c, float n / seconds)
                    |> List.ofArray
                Latency = group |> Array.map _.LatencyMs |> percentiles
                Ttfb =
                    group
                    |> Array.filter (fun s -> s.TtfbMs >= 0.0)
                    |> Array.map _.TtfbMs
                    |> percentiles
                InputTokens = group |> Array.sumBy _.InputTokens
                OutputTokens = group |> Array.sumBy _.OutputTokens
                CostUsd = group |> Array.sumBy _.CostUsd
                FailedAttempts = failedHere
                Attempts = group.Length + failedHere
            })
        |> List.ofSeq
