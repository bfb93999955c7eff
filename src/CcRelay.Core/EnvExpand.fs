namespace CcRelay.Core

/// Why a `${…}` reference could not be expanded.
[<RequireQualifiedAccess>]
type ExpandError =
    /// `${VAR}` with VAR unset and no default.
    | Unset of Name: string
    /// `${VAR:?message}` with VAR unset or empty.
    | Required of Name: string * Message: string
    /// A `${` with no closing `}`, or an invalid variable name.
    | Malformed of Detail: string

/// `${VAR}`, `${VAR:-default}`, `${VAR:?message}` and `$$` expansion of config values.
[<RequireQualifiedAccess>]
module EnvExpand =

    /// Expands one value. `lookup` returns a variable's value (None when unset).
    let expand (lookup: string -> string option) (text: string) : Result<string, ExpandError> =
        ignore lookup
        Ok text
