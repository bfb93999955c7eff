/// The statistics window of `WatchStats`: percentiles against a sorted-array oracle, and the window forgets
/// exactly what is older than it.
module CcRelay.Core.Properties.RequestStatsProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

let private sample (atMs: int) (provider: string) (latency: int) (status: int) : RequestSample = {
    At = TimeSpan.FromMilliseconds(float atMs)
    Provider = provider
    Status = status
    ErrorClass = RequestStats.errorClass status (if status < 400 then "ok" else "upstream")
    LatencyMs = float latency
    TtfbMs = float (latency / 2)
    InputTokens = int64 latency
    OutputTokens = 1L
    CostUsd = 0.001m
    Local = false
    FailedAttempts = []
}

/// Samples of providers a, b, c; some failed over from others first, some answered by the relay itself.
let private samples: Gen<RequestSample list> =
    gen {
        let! s =
            Gen.map4
                sample
                (Gen.choose (0, 120_000))
                (Gen.elements [ "a"; "b"; "c" ])
                (Gen.choose (0, 5_000))
                (Gen.elements [ 200; 200; 200; 429; 500; 529 ])

        let! failed = Gen.elements [ "a"; "b"; "c"; "d" ] |> Gen.listOf |> Gen.resize 3
        let! local = Gen.frequency [ 5, Gen.constant false; 1, Gen.constant true ]

        return {
            s with
                FailedAttempts = failed
                Local = local
        }
    }
    |> Gen.listOf

/// The oracle, by the definition: the smallest value with at least q of all values at or below it.
let private oracle (q: float) (values: float list) : float =
    let n = values.Length

    values
    |> List.sort
    |> List.find (fun v ->
        let atOrBelow = values |> List.filter (fun x -> x <= v) |> List.length
        float atOrBelow >= q * float n - 1e-9)

[<Fact>]
let ``percentiles match the sorted-array oracle`` () =
    Check.property (
        Prop.forAll
            (Check.arb (
                Gen.zip (Gen.nonEmptyListOf (Gen.choose (0, 1_000))) (Gen.elements [ 0.5; 0.9; 0.95; 0.99; 1.0 ])
            ))
            (fun (values, q) ->
                let values = values |> List.map float
                RequestStats.percentile q (values |> List.sort |> Array.ofList) = oracle q values)
    )

[<Fact>]
let ``the window forgets exactly what is older than it`` () =
    Check.property (
        Prop.forAll
            (Check.arb (Gen.zip3 samples (Gen.choose (0, 120_000)) (Gen.choose (1_000, 60_000))))
            (fun (samples, nowMs, windowMs) ->
                let now = TimeSpan.FromMilliseconds(float nowMs)
                let window = TimeSpan.FromMilliseconds(float windowMs)
                let inWindow = samples |> List.filter (fun s -> s.At <= now && now - s.At < window)
                // the relay's own answers are no provider's traffic; their failed attempts are
                let kept = inWindow |> List.filter (fun s -> not s.Local)
                let failed = inWindow |> List.collect _.FailedAttempts
                let summary = RequestStats.summarize now window now samples

                let counted = summary |> List.sumBy _.Requests
                let byProvider = kept |> List.countBy _.Provider

                let providers = (byProvider |> List.map fst) @ failed |> List.distinct |> List.sort

                counted = kept.Length
                && (summary |> List.map _.Provider) = providers
                && (summary |> List.sumBy _.FailedAttempts) = failed.Length
                && (summary |> List.sumBy _.InputTokens) = (kept |> List.sumBy _.InputTokens)
                && summary
                   |> List.forall (fun w ->
                       let mine = kept |> List.filter (fun s -> s.Provider = w.Provider)
                       let failedHere = failed |> List.filter ((=) w.Provider) |> List.length
                       let latencies = mine |> List.map _.LatencyMs

                       let p (q: float) =
                           if latencies.IsEmpty then 0.0 else oracle q latencies

                       w.Requests = mine.Length
                       && w.FailedAttempts = failedHere
                       && w.Attempts = mine.Length + failedHere
                       && w.Errors = (mine |> List.filter (fun s -> s.ErrorClass <> "") |> List.length) + failedHere
                       && w.Latency.P99 = p 0.99
                       && w.Latency.P50 = p 0.5))
    )
