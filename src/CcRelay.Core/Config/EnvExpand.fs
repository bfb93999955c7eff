namespace CcRelay.Core

open System
open System.Text

/// Why a `${…}` reference could not be expanded.
[<RequireQualifiedAccess>]
type ExpandError =
    /// `${VAR}` with VAR unset and no default.
    | Unset of Name: string
    /// `${VAR:?message}` with VAR unset or empty (or `${VAR?message}` with VAR unset).
    | Required of Name: string * Message: string
    /// A `${` with no closing `}`, or an invalid variable name.
    | Malformed of Detail: string

/// `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and `$$` expansion of config values.
///
/// The grammar is a small, strict subset of POSIX parameter expansion:
///
/// - `${NAME}`: the value of NAME; an error when NAME is unset (an empty value is a value).
/// - `${NAME:-word}` / `${NAME-word}`: `word` when NAME is unset or empty / only when unset.
/// - `${NAME:?message}` / `${NAME?message}`: an error carrying `message` when NAME is unset or empty / unset.
/// - `$$`: a literal `$`.
/// - Any other `$` (`$HOME`, a trailing `$`, `a$b`) is kept as written.
///
/// `word` and `message` may themselves contain `${…}` and `$$`; they are expanded only when used.
/// NAME is `[A-Za-z_][A-Za-z0-9_]*`.
///
/// NOTE: the Go project ran `os.ExpandEnv` over the whole file, so `$VAR` expanded, an unset variable
/// silently became "" and a `$` inside a password was mangled (seed §16 #24). Here only `${…}` expands,
/// unset is an error, and a lone `$` is left alone.
[<RequireQualifiedAccess>]
module EnvExpand =

    let private isNameStart (c: char) : bool = Char.IsAsciiLetter c || c = '_'

    let private isNameChar (c: char) : bool = Char.IsAsciiLetterOrDigit c || c = '_'

    /// A lookup under which every variable is set and non-empty: expanding with it checks a word's syntax
    /// (and finds where it ends) without ever failing for an unset variable or a `:?`.
    let private syntaxOnly: string -> string option = fun _ -> Some "x"

    /// Expands `text` from `start` until its end (`inBraces = false`) or until the `}` that closes the
    /// enclosing `${…}` (`inBraces = true`). Returns the expansion and the index of that `}` (or the end).
    let rec private word
        (lookup: string -> string option)
        (text: string)
        (start: int)
        (inBraces: bool)
        : Result<string * int, ExpandError> =
        let out = StringBuilder()

        let rec loop (i: int) : Result<string * int, ExpandError> =
            if i >= text.Length then
                if inBraces then
                    Error(ExpandError.Malformed "a `${` is not closed by `}`")
                else
                    Ok(out.ToString(), i)
            else
                match text[i] with
                | '}' when inBraces -> Ok(out.ToString(), i)
                | '$' when i + 1 < text.Length && text[i + 1] = '$' ->
                    out.Append '$' |> ignore
                    loop (i + 2)
                | '$' when i + 1 < text.Length && text[i + 1] = '{' ->
                    match reference lookup text (i + 2) with
                    | Ok(value, next) ->
                        out.Append(value: string) |> ignore
                        loop next
                    | Error e -> Error e
                | c ->
                    out.Append c |> ignore
                    loop (i + 1)

        loop start

    /// Expands the reference whose name starts at `start` (just after `${`); returns its value and the
    /// index after its closing `}`.
    and private reference
        (lookup: string -> string option)
        (text: string)
        (start: int)
        : Result<string * int, ExpandError> =
        let mutable stop = start

        while stop < text.Length && isNameChar text[stop] do
            stop <- stop + 1

        let name = text.Substring(start, stop - start)

        // The operand of `-`/`?`: expanded with the real lookup only when it is used.
        let operand (operandStart: int) (used: bool) : Result<string * int, ExpandError> =
            word (if used then lookup else syntaxOnly) text operandStart true
            |> Result.map (fun (value, close) -> value, close + 1)

        let unsetOrEmpty = lookup name |> Option.forall String.IsNullOrEmpty
        let unset = (lookup name).IsNone

        let at (offset: int) =
            if offset < text.Length then Some text[offset] else None

        if name.Length = 0 || not (isNameStart name[0]) then
            let shown = if name.Length = 0 then "an empty name" else $"\"%s{name}\""

            Error(
                ExpandError.Malformed
                    $"`${{` must be followed by a variable name ([A-Za-z_][A-Za-z0-9_]*), found %s{shown}"
            )
        else
            match at stop, at (stop + 1) with
            | None, _ -> Error(ExpandError.Malformed $"`${{%s{name}` is not closed by `}}`")
            | Some '}', _ ->
                match lookup name with
                | Some value -> Ok(value, stop + 1)
                | None -> Error(ExpandError.Unset name)
            | Some ':', Some '-' ->
                operand (stop + 2) unsetOrEmpty
                |> Result.map (fun (fallback, next) -> (if unsetOrEmpty then fallback else (lookup name).Value), next)
            | Some '-', _ ->
                operand (stop + 1) unset
                |> Result.map (fun (fallback, next) -> (if unset then fallback else (lookup name).Value), next)
            | Some ':', Some '?' ->
                operand (stop + 2) unsetOrEmpty
                |> Result.bind (fun (message, next) ->
                    if unsetOrEmpty then
                        Error(ExpandError.Required(name, message))
                    else
                        Ok((lookup name).Value, next))
            | Some '?', _ ->
                operand (stop + 1) unset
                |> Result.bind (fun (message, next) ->
                    if unset then
                        Error(ExpandError.Required(name, message))
                    else
                        Ok((lookup name).Value, next))
            | Some c, _ ->
                Error(
                    ExpandError.Malformed $"`${{%s{name}` is followed by '%c{c}'; expected `}}`, `:-`, `-`, `:?` or `?`"
                )

    /// Expands one value. `lookup` returns a variable's value (None when unset).
    let expand (lookup: string -> string option) (text: string) : Result<string, ExpandError> =
        // Fast path: most values contain no `$` at all.
        if not (text.Contains '$') then
            Ok text
        else
            word lookup text 0 false |> Result.map fst

    /// A one-line description of an expansion error, naming the variable but never its value.
    let describe (error: ExpandError) : string =
        match error with
        | ExpandError.Unset name ->
            $"environment variable %s{name} is not set (write ${{%s{name}:-default}} to give a default)"
        | ExpandError.Required(name, "") -> $"environment variable %s{name} is required but not set"
        | ExpandError.Required(name, message) -> $"environment variable %s{name} is required: %s{message}"
        | ExpandError.Malformed detail -> $"bad variable reference: %s{detail} (write $$ for a literal $)"
