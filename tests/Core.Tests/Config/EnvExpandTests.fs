module CcRelay.Core.Tests.EnvExpandTests

open CcRelay.Core
open Xunit

let private environment: Map<string, string> =
    Map.ofList [ "HOME", "/home/u"; "EMPTY", ""; "PORT", "8787"; "DOLLAR", "a$b" ]

let private expand (text: string) : Result<string, ExpandError> =
    EnvExpand.expand environment.TryFind text

[<Theory>]
[<InlineData("plain text", "plain text")>]
[<InlineData("", "")>]
[<InlineData("${HOME}", "/home/u")>]
[<InlineData("x${HOME}y${PORT}z", "x/home/uy8787z")>]
[<InlineData("${EMPTY}", "")>]
[<InlineData("${UNSET:-fallback}", "fallback")>]
[<InlineData("${EMPTY:-fallback}", "fallback")>]
[<InlineData("${HOME:-fallback}", "/home/u")>]
[<InlineData("${UNSET-fallback}", "fallback")>]
[<InlineData("${EMPTY-fallback}", "")>]
[<InlineData("${UNSET:-}", "")>]
[<InlineData("${UNSET:-a:b-c}", "a:b-c")>]
[<InlineData("${UNSET:-${HOME}}", "/home/u")>]
[<InlineData("${UNSET:-${ALSO_UNSET:-deep}}", "deep")>]
[<InlineData("${HOME:-${ALSO_UNSET}}", "/home/u")>]
[<InlineData("${HOME:?needed}", "/home/u")>]
[<InlineData("${EMPTY?needed}", "")>]
[<InlineData("$$", "$")>]
[<InlineData("$${HOME}", "${HOME}")>]
[<InlineData("pa$$word", "pa$word")>]
[<InlineData("pa$word", "pa$word")>]
[<InlineData("$HOME", "$HOME")>]
[<InlineData("cost: 5$", "cost: 5$")>]
[<InlineData("$ {HOME}", "$ {HOME}")>]
[<InlineData("${DOLLAR}", "a$b")>]
[<InlineData("{}}", "{}}")>]
let ``expands references and leaves other text alone`` (text: string, expected: string) =
    Assert.Equal(Ok expected, expand text)

[<Fact>]
let ``an unset variable without a default is an error naming it`` () =
    Assert.Equal(Error(ExpandError.Unset "NOPE"), expand "key-${NOPE}")

[<Fact>]
let ``an unset variable inside a used default is an error naming it`` () =
    Assert.Equal(Error(ExpandError.Unset "INNER"), expand "${OUTER:-${INNER}}")

[<Theory>]
[<InlineData("${UNSET:?set UNSET to your key}", "UNSET", "set UNSET to your key")>]
[<InlineData("${EMPTY:?must not be empty}", "EMPTY", "must not be empty")>]
[<InlineData("${UNSET?}", "UNSET", "")>]
[<InlineData("${UNSET:?home is ${HOME}}", "UNSET", "home is /home/u")>]
let ``a required variable that is missing is an error with its message`` (text: string, name: string, message: string) =
    Assert.Equal(Error(ExpandError.Required(name, message)), expand text)

[<Theory>]
[<InlineData("${HOME")>]
[<InlineData("${")>]
[<InlineData("${}")>]
[<InlineData("${1ABC}")>]
[<InlineData("${A!}")>]
[<InlineData("${HOME:+x}")>]
[<InlineData("${HO ME}")>]
[<InlineData("${UNSET:-unclosed")>]
[<InlineData("${UNSET:-${}}")>]
let ``malformed references are errors`` (text: string) =
    match expand text with
    | Error(ExpandError.Malformed _) -> ()
    | other -> failwith $"expected Malformed for %s{text}, got %A{other}"

[<Fact>]
let ``an unused default is still checked for syntax`` () =
    match expand "${HOME:-${}" with
    | Error(ExpandError.Malformed _) -> ()
    | other -> failwith $"expected Malformed, got %A{other}"

[<Fact>]
let ``describe names the variable but never its value`` () =
    let message = EnvExpand.describe (ExpandError.Unset "API_KEY")
    Assert.Contains("API_KEY", message)
    Assert.Contains("${API_KEY:-default}", message)
