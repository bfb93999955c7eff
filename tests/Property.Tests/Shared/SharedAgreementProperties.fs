/// Relays sharing one store (docs/scale-out.md): config agreement judged from the peers' fingerprints, and the pins
/// a relay joining late restores.
module CcRelay.Core.Properties.SharedAgreementProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

let private wall = DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero)

[<Fact>]
let ``judge: agrees iff every peer has my fingerprint; differs lists exactly the others; odd iff another has more holders``
    ()
    =
    let gen =
        gen {
            let! mine = Gen.elements [ "f1"; "f2"; "f3" ]
            let! fingerprints = Gen.listOf (Gen.elements [ "f1"; "f2"; "f3" ])
            return mine, fingerprints |> List.mapi (fun i f -> $"r%02d{i}", f)
        }
        |> Check.arb

    Check.property (
        Prop.forAll gen (fun (mine, peers) ->
            let others = peers |> List.filter (fun (_, f) -> f <> mine)

            let holders f =
                peers |> List.filter (fun (_, g) -> g = f) |> List.length

            let mineHolders = 1 + holders mine

            match SharedAgreement.judge mine peers with
            | ConfigAgreement.Alone -> peers.IsEmpty
            | ConfigAgreement.Agrees n -> not peers.IsEmpty && others.IsEmpty && n = peers.Length
            | ConfigAgreement.Differs(relays, odd) ->
                relays = (others |> List.map fst |> List.sort)
                && odd = (others |> List.exists (fun (_, f) -> holders f > mineHolders)))
    )

[<Fact>]
let ``restored pins: alive only, one per conversation and the newest, never more than maxPins`` () =
    let gen =
        gen {
            let! pins =
                Gen.listOf (
                    gen {
                        let! key = Gen.choose (0, 20)
                        let! family = Gen.elements [ "anthropic"; "openai"; "gemini" ]
                        // up to 4 h ago, by the minute: some older than the 3 h lifetime
                        let! minutes = Gen.choose (0, 240)

                        return {
                            Key = uint64 key
                            Family = family
                            PinnedAt = wall.AddMinutes(float -minutes)
                        }
                    }
                )

            return pins
        }
        |> Check.arb

    Check.property (
        Prop.forAll gen (fun pins ->
            let chosen = SharedPins.toRestore wall pins
            let keys = chosen |> List.map _.Key

            chosen.Length <= RelayRuntime.maxPins
            && List.distinct keys = keys
            && chosen
               |> List.forall (fun p ->
                   p.Key <> 0UL
                   && wall - p.PinnedAt < RelayRuntime.pinLifetime
                   && pins |> List.forall (fun q -> q.Key <> p.Key || q.PinnedAt <= p.PinnedAt))
            // every conversation with an alive pin is restored
            && (pins
                |> List.filter (fun p -> p.Key <> 0UL && wall - p.PinnedAt < RelayRuntime.pinLifetime)
                |> List.map _.Key
                |> List.distinct
                |> List.sort)
                =
                List.sort keys
            // oldest first, so the newest pins are the last applied
            && (chosen |> List.map _.PinnedAt) = (chosen |> List.map _.PinnedAt |> List.sort))
    )
