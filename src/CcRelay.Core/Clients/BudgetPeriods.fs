namespace CcRelay.Core

open System

/// The calendar of budgets: where a day, a week (Monday to Monday) and a month start and end, at midnight in
/// one time zone (`ledger.time_zone`, UTC by default). Pure: the time zone's rules are data, `now` is given.
[<RequireQualifiedAccess>]
module BudgetPeriods =

    /// The first instant at which the local clock reads a wall-clock time, or the first valid one after it. A
    /// midnight skipped by a daylight-saving change (some zones jump from 23:59 to 01:00) starts the period at the
    /// first local time that exists; a midnight repeated by one (America/Havana falls back from 01:00 to 00:00)
    /// starts it at its first occurrence, so every instant the local calendar puts in a period lies at or after
    /// the period's start (`ConvertTimeToUtc` alone takes the second occurrence: the hour before it would belong
    /// to a day that has not started yet, and to the previous day's cached span too).
    let private toUtc (zone: TimeZoneInfo) (local: DateTime) : DateTimeOffset =
        let mutable local = DateTime.SpecifyKind(local, DateTimeKind.Unspecified)
        let mutable steps = 0

        // a skipped hour is at most 2 hours (Antarctica/Troll); 15-minute steps find its end
        while zone.IsInvalidTime local && steps < 16 do
            local <- local.AddMinutes 15.0
            steps <- steps + 1

        if zone.IsAmbiguousTime local then
            // the earliest of its instants: the one with the largest offset from UTC
            let offset = zone.GetAmbiguousTimeOffsets local |> Array.max
            DateTimeOffset(local, offset).ToUniversalTime()
        else
            DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(local, zone), TimeSpan.Zero)

    /// The local midnight that starts the period holding `now`, as a local date.
    let private localStart (zone: TimeZoneInfo) (period: BudgetPeriod) (now: DateTimeOffset) : DateTime =
        let today = TimeZoneInfo.ConvertTime(now, zone).Date

        match period with
        | BudgetPeriod.Day -> today
        | BudgetPeriod.Week -> today.AddDays(-(float ((int today.DayOfWeek + 6) % 7)))
        | BudgetPeriod.Month -> DateTime(today.Year, today.Month, 1)
        | BudgetPeriod.Total -> DateTime.MinValue

    /// When the period holding `now` started (UTC); `DateTimeOffset.MinValue` for `Total`.
    let startOf (zone: TimeZoneInfo) (period: BudgetPeriod) (now: DateTimeOffset) : DateTimeOffset =
        match period with
        | BudgetPeriod.Total -> DateTimeOffset.MinValue
        | _ -> toUtc zone (localStart zone period now)

    /// When the period holding `now` ends and the next starts (UTC); None for `Total`, which never ends.
    let endOf (zone: TimeZoneInfo) (period: BudgetPeriod) (now: DateTimeOffset) : DateTimeOffset option =
        let start = localStart zone period now

        match period with
        | BudgetPeriod.Day -> Some(toUtc zone (start.AddDays 1.0))
        | BudgetPeriod.Week -> Some(toUtc zone (start.AddDays 7.0))
        | BudgetPeriod.Month -> Some(toUtc zone (start.AddMonths 1))
        | BudgetPeriod.Total -> None

    /// The local calendar day of an instant (`usage --by day`), as `yyyy-MM-dd`.
    let dayOf (zone: TimeZoneInfo) (at: DateTimeOffset) : string =
        TimeZoneInfo.ConvertTime(at, zone).ToString("yyyy-MM-dd", Globalization.CultureInfo.InvariantCulture)

    /// `--since` of `cc-relay usage`: `7d`, `24h`, `30m`, `2w` before `now`, or a date (`2026-12-01`, midnight in
    /// `zone`) or an RFC 3339 date-time.
    let parseSince (zone: TimeZoneInfo) (now: DateTimeOffset) (text: string) : Result<DateTimeOffset, string> =
        let text = text.Trim()
        let invariant = Globalization.CultureInfo.InvariantCulture

        let amount =
            if text.Length >= 2 then
                match Int32.TryParse(text.AsSpan(0, text.Length - 1), Globalization.NumberStyles.None, invariant) with
                | true, n -> Some n
                | _ -> None
            else
                None

        match amount, (if text.Length > 0 then text[text.Length - 1] else ' ') with
        | Some n, 'm' -> Ok(now.AddMinutes(float -n))
        | Some n, 'h' -> Ok(now.AddHours(float -n))
        | Some n, 'd' -> Ok(now.AddDays(float -n))
        | Some n, 'w' -> Ok(now.AddDays(float (-7 * n)))
        | _ ->
            match DateTime.TryParseExact(text, "yyyy-MM-dd", invariant, Globalization.DateTimeStyles.None) with
            | true, date -> Ok(DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(date, zone), TimeSpan.Zero))
            | _ ->
                match
                    DateTimeOffset.TryParse(
                        text,
                        invariant,
                        Globalization.DateTimeStyles.AssumeUniversal
                        ||| Globalization.DateTimeStyles.AdjustToUniversal
                    )
                with
                | true, at when text.Contains 'T' -> Ok at
                | _ ->
                    Error
                        $"--since: expected a span such as 7d, 24h, 30m or 2w, a date (2026-12-01) or a date-time, got \"%s{text}\""
