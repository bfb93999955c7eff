namespace CcRelay.Core

/// How much a config finding matters: an error stops the load, a warning is reported and the load goes on.
[<RequireQualifiedAccess>]
type internal Severity =
    | Error
    | Warning

/// One thing the decoder found about a config.
type internal Finding = {
    Severity: Severity
    Issue: ConfigIssue
}

/// Building findings.
[<RequireQualifiedAccess>]
module internal Finding =

    /// An error finding.
    let error (issue: ConfigIssue) : Finding = {
        Severity = Severity.Error
        Issue = issue
    }

    /// A warning finding.
    let warning (issue: ConfigIssue) : Finding = {
        Severity = Severity.Warning
        Issue = issue
    }

/// The outcome of decoding one part of a config: its value (None when an error left nothing usable) and
/// every finding, errors and warnings together.
///
/// NOTE: FsToolkit's `Validation<'T, 'E>` accumulates errors, but a load must also keep the *warnings* of
/// parts that failed (an unknown key beside a bad URL): `Validation` drops the Ok side's data on error.
/// This is the same applicative, with a findings log on both sides.
type internal Decoded<'Value> = {
    Value: 'Value option
    Findings: Finding list
}

/// Building and combining `Decoded` values.
[<RequireQualifiedAccess>]
module internal Decoded =

    /// A value with no findings.
    let ok (value: 'Value) : Decoded<'Value> = { Value = Some value; Findings = [] }

    /// Nothing found: an absent optional part.
    let none<'Value> : Decoded<'Value option> = ok None

    /// An error that leaves no value.
    let error (issue: ConfigIssue) : Decoded<'Value> = {
        Value = None
        Findings = [
            {
                Severity = Severity.Error
                Issue = issue
            }
        ]
    }

    /// A value with a warning about it.
    let warn (issue: ConfigIssue) (value: 'Value) : Decoded<'Value> = {
        Value = Some value
        Findings = [
            {
                Severity = Severity.Warning
                Issue = issue
            }
        ]
    }

    /// Adds findings (e.g. a warning) before the existing ones, keeping the value.
    let tell (findings: Finding list) (decoded: Decoded<'Value>) : Decoded<'Value> = {
        decoded with
            Findings = findings @ decoded.Findings
    }

    /// Transforms the value.
    let map (mapping: 'Value -> 'Result) (decoded: Decoded<'Value>) : Decoded<'Result> = {
        Value = Option.map mapping decoded.Value
        Findings = decoded.Findings
    }

    /// Continues with the value, when there is one; findings of both steps are kept.
    let bind (binder: 'Value -> Decoded<'Result>) (decoded: Decoded<'Value>) : Decoded<'Result> =
        match decoded.Value with
        | Some value ->
            let next = binder value

            {
                Value = next.Value
                Findings = decoded.Findings @ next.Findings
            }
        | None -> {
            Value = None
            Findings = decoded.Findings
          }

    /// Pairs two independent parts; both are always decoded, so every finding is reported.
    let zip (first: Decoded<'First>) (second: Decoded<'Second>) : Decoded<'First * 'Second> = {
        Value = Option.map2 (fun a b -> a, b) first.Value second.Value
        Findings = first.Findings @ second.Findings
    }

    /// Decodes every item; the list has a value only when every item has one.
    let sequence (items: Decoded<'Value> list) : Decoded<'Value list> =
        let values = items |> List.choose _.Value

        {
            Value = if values.Length = items.Length then Some values else None
            Findings = items |> List.collect _.Findings
        }

    /// Uses `fallback` for an absent value (or one an error left unusable; the error stays recorded, so the
    /// load still fails, but later checks can run on a plausible value).
    let orDefault (fallback: 'Value) (decoded: Decoded<'Value option>) : Decoded<'Value> = {
        Value = decoded.Value |> Option.flatten |> Option.orElse (Some fallback)
        Findings = decoded.Findings
    }

    /// Always has a value: the part's own value when it had one, else None (its findings are kept). Lets a
    /// record decode go on past a bad field, so later cross-field checks still report.
    let attempt (decoded: Decoded<'Value>) : Decoded<'Value option> = {
        Value = Some decoded.Value
        Findings = decoded.Findings
    }

    /// True when some finding is an error.
    let hasErrors (decoded: Decoded<'Value>) : bool =
        decoded.Findings |> List.exists (fun f -> f.Severity = Severity.Error)

    /// Turns every error into a warning with `note` appended (problems of a disabled provider).
    let soften (note: string) (decoded: Decoded<'Value>) : Decoded<'Value> = {
        decoded with
            Findings =
                decoded.Findings
                |> List.map (fun f ->
                    match f.Severity with
                    | Severity.Warning -> f
                    | Severity.Error -> {
                        Severity = Severity.Warning
                        Issue = {
                            f.Issue with
                                Message = $"%s{f.Issue.Message} (%s{note})"
                        }
                      })
    }

/// `decoded { let! a = … and! b = … return … }`: `and!` decodes independent parts and reports all their
/// findings; `let!` continues only with a value.
type internal DecodedBuilder() =
    member _.Return(value: 'Value) : Decoded<'Value> = Decoded.ok value
    member _.ReturnFrom(decoded: Decoded<'Value>) : Decoded<'Value> = decoded

    member _.Bind(decoded: Decoded<'Value>, binder: 'Value -> Decoded<'Result>) : Decoded<'Result> =
        Decoded.bind binder decoded

    member _.BindReturn(decoded: Decoded<'Value>, mapping: 'Value -> 'Result) : Decoded<'Result> =
        Decoded.map mapping decoded

    member _.MergeSources(first: Decoded<'First>, second: Decoded<'Second>) : Decoded<'First * 'Second> =
        Decoded.zip first second

/// The `decoded { }` computation expression.
[<AutoOpen>]
module internal DecodedBuilderInstance =
    /// Builds a `Decoded` from independent (`and!`) and dependent (`let!`) parts.
    let decoded = DecodedBuilder()
