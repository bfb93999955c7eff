/// Runs FsCheck properties from xunit facts (FsCheck.Xunit is not available here).
module CcRelay.Core.Properties.Check

open FsCheck
open FsCheck.FSharp

/// Checks a property with `maxTest` cases and throws (failing the xunit test) with the replay seed on failure.
let quick (maxTest: int) (property: 'Testable) : unit =
    Check.One(Config.QuickThrowOnFailure.WithMaxTest(maxTest), property)

/// The default: 300 cases.
let property (property: 'Testable) : unit = quick 300 property

/// An Arbitrary from a generator (no shrinking).
let arb (gen: Gen<'Value>) : Arbitrary<'Value> = Arb.fromGen gen
