module CcRelay.Core.Properties.EdgeProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

/// A run of authentication failures: (milliseconds since the previous one, source index) pairs.
let private failures: Gen<int * (int * int) list> =
    gen {
        let! perMinute = Gen.choose (1, 5)
        let! steps = Gen.listOf (Gen.zip (Gen.choose (0, 20_000)) (Gen.choose (0, 3)))
        return perMinute, steps
    }

/// Replays failures through the limiter: (time, source, verdict) per failure.
let private replay (perMinute: int) (steps: (int * int) list) : (TimeSpan * string * AuditAdmit) list =
    steps
    |> List.fold
        (fun (limiter, now, acc) (gap, source) ->
            let now = now + TimeSpan.FromMilliseconds(float gap)
            let name = $"10.0.0.%d{source}"
            let struct (verdict, next) = AuthFailureLimiter.admit now perMinute name limiter
            next, now, (now, name, verdict) :: acc)
        (AuthFailureLimiter.empty, TimeSpan.Zero, [])
    |> fun (_, _, acc) -> List.rev acc

[<Fact>]
let ``Edge auth-failure limiter: no source gets more than 2N lines in any sliding minute (N per fixed window)`` () =
    Check.property (
        Prop.forAll (Check.arb failures) (fun (perMinute, steps) ->
            replay perMinute steps
            |> List.filter (fun (_, _, v) -> v <> AuditAdmit.Suppress)
            |> List.groupBy (fun (_, source, _) -> source)
            |> List.forall (fun (_, written) ->
                // windows are fixed (each starts at the first failure after the last one ended): a sliding
                // minute overlaps at most two of them
                written
                |> List.forall (fun (start, _, _) ->
                    written
                    |> List.filter (fun (t, _, _) -> t >= start && t - start < AuthFailureLimiter.window)
                    |> List.length
                    |> fun n -> n <= 2 * perMinute)))
    )

[<Fact>]
let ``Edge auth-failure limiter: nothing is lost — every failure is written or counted into a later line`` () =
    Check.property (
        Prop.forAll (Check.arb failures) (fun (perMinute, steps) ->
            let verdicts = replay perMinute steps

            verdicts
            |> List.groupBy (fun (_, source, _) -> source)
            |> List.forall (fun (_, events) ->
                let suppressed =
                    events |> List.filter (fun (_, _, v) -> v = AuditAdmit.Suppress) |> List.length

                let reported =
                    events
                    |> List.sumBy (fun (_, _, v) ->
                        match v with
                        | AuditAdmit.Write n -> n
                        | AuditAdmit.Suppress -> 0)

                // what was reported never exceeds what was left out; the rest waits for the next written line
                reported <= suppressed
                && (match List.tryLast events with
                    | Some(_, _, AuditAdmit.Write _) -> reported = suppressed
                    | _ -> true)))
    )

/// Host names made of 1-3 labels of lower-case letters.
let private hostName: Gen<string> =
    Gen.elements [ "a"; "api"; "anthropic"; "example"; "com"; "net"; "x1" ]
    |> Gen.listOfLength 3
    |> Gen.map (String.concat ".")

/// Re-cases a string at random positions.
let private recase (text: string) : Gen<string> =
    text
    |> Seq.map (fun c -> Gen.elements [ Char.ToLowerInvariant c; Char.ToUpperInvariant c ])
    |> Gen.sequenceToList
    |> Gen.map (fun chars -> String(Array.ofList chars))

[<Fact>]
let ``Edge host allowlist: a suffix admits exactly the domain and names below it, whatever their case`` () =
    let cases =
        gen {
            let! domain = hostName
            let! label = Gen.elements [ "api"; "a-b"; "z" ]
            let! other = hostName
            let! host = Gen.elements [ domain; label + "." + domain; other; label + domain ]
            let! shown = recase host
            return domain, host, shown
        }

    Check.property (
        Prop.forAll (Check.arb cases) (fun (domain, host, shown) ->
            let pattern =
                match HostPattern.parse ("." + domain) with
                | Ok p -> p
                | Error e -> failwith e

            let expected =
                host = domain || host.EndsWith("." + domain, StringComparison.Ordinal)

            HostPattern.matches shown pattern = expected)
    )
