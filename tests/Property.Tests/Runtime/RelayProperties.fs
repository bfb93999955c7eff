module CcRelay.Core.Properties.RelayProperties

open System
open FsCheck
open FsCheck.FSharp
open Xunit
open CcRelay.Core

let private key (secret: string) (rpm: int) : KeyConfig = {
    Key = secret
    RpmLimit = rpm
    ItpmLimit = 0
    OtpmLimit = 0
    TpmLimit = 0
    Priority = 0
    Weight = 1
    Aws = None
}

let private provider (name: string) (keys: KeyConfig list) : ProviderConfig = {
    Config.defaultProvider name ProviderType.AnthropicCompatible (Uri $"https://%s{name}.example.test") with
        Keys = keys
}

let private names = [ "a"; "b"; "c"; "d"; "e" ]
let private secrets = [ "k1"; "k2"; "k3"; "k4" ]

/// A config over a random subset of providers, each with a random subset of keys.
let private config: Gen<RelayConfig> =
    gen {
        let! chosen = Gen.subListOf names |> Gen.filter (fun l -> not l.IsEmpty)

        let! providers =
            chosen
            |> List.map (fun name ->
                gen {
                    let! keys = Gen.subListOf secrets
                    let! rpm = Gen.choose (1, 30)
                    return provider name (keys |> List.map (fun k -> key (name + k) rpm))
                })
            |> Gen.sequenceToList

        return {
            Config.defaults with
                Providers = providers
        }
    }

/// Random traffic over a runtime: plans, attempts with random results, releases, disables.
let private traffic (runtime: RelayRuntime) (seeds: int list) : RelayRuntime =
    let mutable runtime = runtime
    let mutable now = TimeSpan.FromSeconds 1.0

    for seed in seeds do
        now <- now + TimeSpan.FromMilliseconds(float (seed % 700))

        let request = {
            Model = "m"
            EstimatedInputTokens = 10
            ExpectedOutputTokens = 10
            ThinkingSignatures = false
            ConversationKey = uint64 (seed % 3)
            ClientCredential = false
            Seed = uint64 seed
            ArrivedAt = now
        }

        let planned = Relay.plan runtime now request
        let next = Relay.next planned.Runtime now planned.Value
        runtime <- next.Runtime

        match next.Value with
        | struct (Step.Send attempt, dispatch) ->
            let result =
                match seed % 6 with
                | 0 -> AttemptResult.Answered(429, ValueSome(TimeSpan.FromSeconds 3.0), TimeSpan.Zero)
                | 1 -> AttemptResult.Answered(529, ValueNone, TimeSpan.Zero)
                | 2 -> AttemptResult.Answered(401, ValueNone, TimeSpan.Zero)
                | 3 -> AttemptResult.ConnectFailed
                | _ -> AttemptResult.Answered(200, ValueNone, TimeSpan.FromMilliseconds(float (seed % 900)))

            let completed = Relay.complete runtime now dispatch attempt result
            runtime <- completed.Runtime

            if seed % 5 <> 0 then
                runtime <- Relay.release runtime attempt
        | _ -> ()

        if seed % 17 = 0 then
            runtime <- (RelayHealth.disable runtime (names[seed % names.Length])).Runtime

    runtime

let private reload =
    Gen.zip3 config config (Gen.listOf (Gen.choose (0, 100_000)) |> Gen.resize 40)
    |> Check.arb

[<Fact>]
let ``reconcile keeps the survivors' state, starts new ones fresh and drops removed ones`` () =
    Check.quick
        200
        (Prop.forAll reload (fun (before, after, seeds) ->
            let old = traffic (Relay.create TimeSpan.Zero before) seeds
            let now = TimeSpan.FromSeconds 500.0
            let reloaded = Relay.reconcile now after old
            let fresh = Relay.create now after

            Assert.Equal<string list>(
                after.Providers |> List.map _.Name,
                reloaded.Providers |> Array.map _.Name |> List.ofArray
            )

            for i, state in Array.indexed reloaded.Providers do
                match old.Providers |> Array.tryFind (fun p -> p.Name = state.Name) with
                | Some survivor ->
                    Assert.Equal(survivor.Breaker, state.Breaker)
                    Assert.Equal(survivor.InFlight, state.InFlight)
                    Assert.Equal(survivor.Latency, state.Latency)

                    for k in state.Keys do
                        match survivor.Keys |> Array.tryFind (fun o -> o.Id = k.Id) with
                        | Some o when o.Configured = k.Configured -> Assert.Equal({ o with Revoked = false }, k)
                        | Some o ->
                            // The configured limits changed: the new ones apply; the cooldown stays.
                            Assert.Equal(k.Configured, k.Limits)
                            Assert.Equal(o.CooldownUntil, k.CooldownUntil)
                            Assert.False(k.Revoked)
                        | None -> Assert.Equal(fresh.Providers[i].Keys |> Array.find (fun f -> f.Id = k.Id), k)
                | None -> Assert.Equal(fresh.Providers[i], state)

            Assert.True((old.Pins = reloaded.Pins))
            Assert.Equal(old.Routing.Counter, reloaded.Routing.Counter)))

[<Fact>]
let ``gauges agree with the health report, name only known circuit states, never show an open circuit up, and keep ratios in 0..1``
    ()
    =
    let traffic' =
        Gen.zip config (Gen.listOf (Gen.choose (0, 100_000)) |> Gen.resize 60)
        |> Check.arb

    Check.property (
        Prop.forAll traffic' (fun (config, seeds) ->
            let runtime = traffic (Relay.create TimeSpan.Zero config) seeds
            // the time of the last step of the traffic, or a little later
            let now =
                TimeSpan.FromSeconds 1.0
                + TimeSpan.FromMilliseconds(float (seeds |> List.sumBy (fun s -> s % 700)))
                + TimeSpan.FromMilliseconds(float (seeds.Length % 3 * 500))

            let gauges = RelayHealth.gauges runtime now
            let report = RelayHealth.report "v" runtime now

            Assert.Equal<string list>(config.Providers |> List.map _.Name, gauges |> List.map _.Name)

            for g, line in List.zip gauges report.Providers do
                Assert.Equal(line.Status = "up", g.Up)
                Assert.Contains(g.Circuit, RelayHealth.circuitStates)
                Assert.Equal(line.Circuit = "disabled", (g.Circuit = "isolated"))
                // an open circuit refuses: a provider that takes requests is never shown open
                Assert.False(g.Up && g.Circuit = "open", $"%s{g.Name} is up with an open circuit")
                // the same circuit as the health report, in the metric's names
                let named =
                    if line.Circuit = "disabled" then
                        "isolated"
                    else
                        line.Circuit.Replace('-', '_')

                Assert.Equal(named, g.Circuit)

                for k in g.Keys do
                    Assert.InRange(k.Ratio, 0.0, 1.0))
    )

[<Fact>]
let ``a picked key is always ready, and none is picked while one is`` () =
    let pool =
        gen {
            let! count = Gen.choose (1, 10)
            let! rpms = Gen.listOfLength count (Gen.choose (0, 5))
            let! priorities = Gen.listOfLength count (Gen.choose (0, 2))
            let! drains = Gen.listOfLength count (Gen.choose (0, 6))
            let! cooled = Gen.listOfLength count (Gen.elements [ false; false; true ])
            let! strategy = Gen.elements (KeyStrategy.all |> List.map snd)
            let! random = Gen.choose (0, Int32.MaxValue)
            let! cursor = Gen.choose (0, 20)
            return rpms, priorities, drains, cooled, strategy, uint64 random, cursor
        }
        |> Check.arb

    Check.property (
        Prop.forAll pool (fun (rpms, priorities, drains, cooled, strategy, random, cursor) ->
            let keys =
                List.zip rpms priorities
                |> List.mapi (fun i (rpm, priority) -> {
                    key $"s%d{i}" rpm with
                        Priority = priority
                })
                |> KeyPool.compile

            let now = TimeSpan.FromSeconds 10.0

            let states =
                keys
                |> Array.mapi (fun i k ->
                    let mutable s = KeyPool.initial now k

                    for _ in 1 .. drains[i] do
                        s <- KeyPool.take now 0L s

                    if cooled[i] then
                        KeyPool.coolDown (now + TimeSpan.FromSeconds 5.0) s
                    else
                        s)

            let anyReady =
                states |> Array.exists (fun s -> KeyPool.readyIn now 1 s = TimeSpan.Zero)

            match KeyPool.pick strategy (KeyPool.tiers keys) keys states cursor now 1 random with
            | KeyPool.Chosen k ->
                Assert.Equal(TimeSpan.Zero, KeyPool.readyIn now 1 states[k])
                // No ready key of a higher tier was passed over.
                Assert.DoesNotContain(
                    true,
                    states
                    |> Array.mapi (fun i s ->
                        keys[i].Priority > keys[k].Priority && KeyPool.readyIn now 1 s = TimeSpan.Zero)
                )
            | KeyPool.NoneReady wait ->
                Assert.False anyReady
                Assert.Equal(states |> Array.map (KeyPool.readyIn now 1) |> Array.min, wait))
    )

[<Fact>]
let ``a provider the operator disabled is never planned, sent to or probed, over any sequence`` () =
    let steps =
        Gen.zip config (Gen.listOf (Gen.choose (0, 100_000)) |> Gen.resize 80)
        |> Check.arb

    Check.quick
        200
        (Prop.forAll steps (fun (config, seeds) ->
            let config = {
                config with
                    Health = {
                        Config.defaultHealth with
                            HealthCheck = {
                                Config.defaultHealth.HealthCheck with
                                    Enabled = true
                                    IntervalMs = 1
                            }
                    }
            }

            let mutable runtime = Relay.create TimeSpan.Zero config
            let mutable now = TimeSpan.FromSeconds 1.0

            let disabled (rt: RelayRuntime) =
                rt.Providers
                |> Array.filter _.Breaker.OperatorDisabled
                |> Array.map _.Name
                |> Set.ofArray

            for seed in seeds do
                now <- now + TimeSpan.FromMilliseconds(float (seed % 3_000))
                let name = names[seed % names.Length]

                match seed % 10 with
                | 0 ->
                    // the switch flips, and flips nothing else: the breaker keeps its own state
                    match RelayPolicy.indexOf runtime.Policy name with
                    | -1 -> ()
                    | i ->
                        let before = runtime.Providers[i].Breaker
                        let enable = before.OperatorDisabled

                        let change = Management.setEnabled runtime name enable

                        runtime <- change.Runtime
                        let after = runtime.Providers[i].Breaker
                        Assert.Equal(not enable, after.OperatorDisabled)

                        Assert.Equal(
                            {
                                before with
                                    OperatorDisabled = not enable
                            },
                            after
                        )
                | 1 ->
                    let due = RelayHealth.probesDue runtime now
                    let off = disabled runtime

                    for probe in due.Value do
                        Assert.DoesNotContain(probe.Provider.Name, off)

                    runtime <- due.Runtime

                    for probe in due.Value do
                        runtime <- (RelayHealth.probed runtime now probe.Provider.Name (seed % 2 = 0)).Runtime
                | _ ->
                    let off = disabled runtime

                    let request = {
                        Model = "m"
                        EstimatedInputTokens = 10
                        ExpectedOutputTokens = 10
                        ThinkingSignatures = false
                        ConversationKey = 0UL
                        ClientCredential = false
                        Seed = uint64 seed
                        ArrivedAt = now
                    }

                    let planned = Relay.plan runtime now request

                    for i in planned.Value.Order do
                        Assert.DoesNotContain(planned.Value.Policy.Providers[i].Name, off)

                    let next = Relay.next planned.Runtime now planned.Value
                    runtime <- next.Runtime

                    match next.Value with
                    | struct (Step.Send attempt, dispatch) ->
                        Assert.DoesNotContain(attempt.ProviderName, off)

                        let result =
                            if seed % 3 = 0 then
                                AttemptResult.Answered(529, ValueNone, TimeSpan.Zero)
                            else
                                AttemptResult.Answered(200, ValueNone, TimeSpan.FromMilliseconds 5.0)

                        runtime <- (Relay.complete runtime now dispatch attempt result).Runtime
                        runtime <- Relay.release runtime attempt
                    | _ -> ()))
