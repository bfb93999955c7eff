/// `cc-relay config init`'s flags: any valid answer set renders (YAML and TOML) to a config that the real
/// loader reads back with the answers as given.
module CcRelay.Core.Properties.ConfigWizardProperties

open System
open System.IO
open CcRelay.Core
open CcRelay.Core.Properties.Generators
open CcRelay.Host.Configuration
open FsCheck
open FsCheck.FSharp
open Xunit

/// A generated answer set: what each flag says, and what the loaded config must then hold.
type private Answers = {
    /// name, type, the key part of `--provider` (None: omitted), the variable it names ("": none)
    Providers: (string * ProviderType * string option * string) list
    Strategy: (string * RoutingStrategy) option
    Stages: (Stage * StageTarget) list
    /// the `--listen` text and the address it names
    Listen: (string * ListenAddress) option
}

let private chars (first: string) (rest: string) (maxRest: int) : Gen<string> =
    gen {
        let! head = Gen.elements (List.ofSeq first)
        let! length = Gen.choose (0, maxRest)
        let! tail = Gen.listOfLength length (Gen.elements (List.ofSeq rest))
        return String(Array.ofList (head :: tail))
    }

let private alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

let private variableName: Gen<string> =
    chars "ABCDEFGHIJKLMNOPQRSTUVWXYZ_abc" "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_" 10

let private keyPart (providerType: ProviderType) : Gen<string option * string> =
    Gen.oneof [
        Gen.constant (None, ConfigWizard.defaultVariable providerType)
        // AI Studio's Gemini requires a key (the flag parser refuses none)
        if providerType = ProviderType.Gemini then
            Gen.constant (Some "GEMINI_API_KEY", "GEMINI_API_KEY")
        else
            Gen.constant (Some "-", "")
        variableName |> Gen.map (fun v -> Some v, v)
        variableName |> Gen.map (fun v -> Some $"${{%s{v}}}", v)
    ]

/// Model names: real ones, and any text a shell could pass (kept as the flag parser and the loader trim it).
let private model: Gen<string> =
    Gen.oneof [
        Gen.elements [
            "GLM-4.5-Air"
            "qwen3:8b"
            "o3"
            "gemini-2.5-pro"
            "a,b"
            "x=y"
            "true"
            "0123"
            "~"
        ]
        anyText
    ]
    |> Gen.map _.Trim()
    |> Gen.filter (fun m -> m.Length > 0)

let private answers: Gen<Answers> =
    gen {
        let! count = Gen.choose (1, 4)
        let! names = chars alnum (alnum + "._-") 12 |> Gen.listOfLength count

        let names = List.distinct names

        let! providers =
            names
            |> List.map (fun name ->
                gen {
                    let! t = Gen.elements ConfigWizard.offered
                    let! key, variable = keyPart t
                    return name, t, key, variable
                })
            |> Gen.sequenceToList

        // model_based needs rules the wizard does not ask for, so it is refused
        let! strategy =
            Gen.optionOf (
                Gen.elements (
                    RoutingStrategy.all
                    |> List.filter (fun (_, s) -> s <> RoutingStrategy.ModelBased)
                )
            )

        let! stages = Gen.subListOf Stage.all

        let! stages =
            stages
            |> List.map (fun (_, stage) ->
                gen {
                    let! provider = Gen.elements names
                    let! m = Gen.optionOf model
                    return stage, { Provider = provider; Model = m }
                })
            |> Gen.sequenceToList

        let! listen =
            Gen.optionOf (
                gen {
                    let! host =
                        Gen.elements [ "127.0.0.1"; "localhost"; "[::1]"; ""; "0.0.0.0"; "relay.example" ]

                    let! port = Gen.choose (0, 65535)
                    let text = $"%s{host}:%d{port}"

                    match ListenAddress.TryParse text with
                    | Ok address -> return text, address
                    | Error e -> return failwith e
                }
            )

        return {
            Providers = providers
            Strategy = strategy
            Stages = stages
            Listen = listen
        }
    }

let private flagsOf (a: Answers) : WizardFlags = {
    Providers =
        a.Providers
        |> List.map (fun (name, t, key, _) ->
            let typeName = ProviderType.wireName t

            match key with
            | Some key -> $"%s{name}:%s{typeName}:%s{key}"
            | None -> $"%s{name}:%s{typeName}")
    Strategy = a.Strategy |> Option.map fst
    Stages =
        a.Stages
        |> List.map (fun (stage, target) ->
            match target.Model with
            | Some m -> $"%s{Stage.wireName stage}=%s{target.Provider},%s{m}"
            | None -> $"%s{Stage.wireName stage}=%s{target.Provider}")
    Listen = a.Listen |> Option.map fst
}

/// Every variable is set, to a value that names it.
let private secret (name: string) : string = $"secret-of-%s{name}"

/// What the loaded config says of the answers, and what it should say, side by side.
let private roundTrip (a: Answers) (config: RelayConfig) =
    let expected =
        a.Providers
        |> List.map (fun (name, t, _, variable) -> name, t, (if variable = "" then [] else [ secret variable ])),
        a.Strategy |> Option.map snd |> Option.defaultValue RoutingStrategy.Failover,
        a.Stages |> List.map (fun (stage, target) -> stage, [ target ]),
        a.Listen |> Option.map snd |> Option.defaultValue Config.defaultListen

    let actual =
        config.Providers |> List.map (fun p -> p.Name, p.Type, p.Keys |> List.map _.Key),
        config.Routing.Strategy,
        config.Routing.Stages.Routes,
        config.Server.Listen

    expected, actual

[<Fact>]
let ``any valid flag set renders, in YAML and in TOML, to a config that loads with the answers as given`` () =
    let directory = Directory.CreateTempSubdirectory("cc-relay-wizard-").FullName

    try
        Check.quick
            300
            (Prop.forAll (Check.arb answers) (fun a ->
                match ConfigWizard.ofFlags (flagsOf a) with
                | Error errors -> false |> Prop.label $"flags refused: %A{errors}\n%A{flagsOf a}"
                | Ok state ->
                    [ ConfigFormat.Yaml, "cc-relay.yaml"; ConfigFormat.Toml, "cc-relay.toml" ]
                    |> List.map (fun (format, file) ->
                        let text = ConfigWizard.render format state
                        let path = Path.Combine(directory, file)
                        File.WriteAllText(path, text)

                        match ConfigFile.Load(path, Func<string, string | null>(fun name -> secret name)) with
                        | Loaded(config, _) ->
                            let expected, actual = roundTrip a config

                            expected = actual
                            |> Prop.label $"%A{format}:\n%s{text}\nexpected %A{expected}\nactual %A{actual}"
                        | Invalid(errors, _) -> false |> Prop.label $"%A{format} did not load:\n%s{text}\n%A{errors}")
                    |> List.reduce (.&.)))
    finally
        Directory.Delete(directory, true)
