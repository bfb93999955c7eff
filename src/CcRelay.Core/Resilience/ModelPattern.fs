namespace CcRelay.Core

open System

/// Model-name patterns (`routing.model_mapping`, `providers[].prices`): a pattern without `*` matches the
/// names that start with it (the Go project's prefix rule); with `*`, it must match the whole name, each
/// `*` standing for any run of characters. Matching is case-sensitive, as in Go.
///
/// When several patterns match, the most specific wins: the one with the most literal (non-`*`)
/// characters — for prefixes, the longest — and among equals the first in the file.
[<RequireQualifiedAccess>]
module ModelPattern =

    /// How specific a pattern is: its count of literal characters.
    let specificity (pattern: string) : int =
        let mutable n = 0

        for c in pattern do
            if c <> '*' then
                n <- n + 1

        n

    /// Glob match of the whole name; `*` matches any run. Iterative with one backtrack point (linear
    /// for the patterns people write, never exponential).
    let private glob (pattern: string) (name: string) : bool =
        let mutable p = 0
        let mutable n = 0
        let mutable star = -1
        let mutable mark = 0
        let mutable result = true
        let mutable fin = false

        while not fin do
            if n < name.Length then
                if p < pattern.Length && pattern[p] <> '*' && pattern[p] = name[n] then
                    p <- p + 1
                    n <- n + 1
                elif p < pattern.Length && pattern[p] = '*' then
                    star <- p
                    mark <- n
                    p <- p + 1
                elif star >= 0 then
                    p <- star + 1
                    mark <- mark + 1
                    n <- mark
                else
                    result <- false
                    fin <- true
            else
                while p < pattern.Length && pattern[p] = '*' do
                    p <- p + 1

                result <- p = pattern.Length
                fin <- true

        result

    /// Whether `pattern` matches the model `name`.
    let matches (pattern: string) (name: string) : bool =
        if pattern.Contains '*' then
            glob pattern name
        else
            name.StartsWith(pattern, StringComparison.Ordinal)

    /// Orders patterns for first-match lookup: most specific first, file order among equals.
    /// Returns the indexes into `patterns`.
    let precedence (patterns: string array) : int array =
        Array.init patterns.Length id
        |> Array.sortWith (fun a b ->
            match compare (specificity patterns[b]) (specificity patterns[a]) with
            | 0 -> compare a b
            | c -> c)

    /// The index of the winning pattern for `name`, scanning `order` (from `precedence`); -1 when none.
    let tryFindIn (patterns: string array) (order: int array) (name: string) : int =
        let mutable found = -1
        let mutable i = 0

        while found < 0 && i < order.Length do
            if matches patterns[order[i]] name then
                found <- order[i]

            i <- i + 1

        found
