module CcRelay.Core.Properties.ModelsProperties

open System
open FsCheck.FSharp
open Xunit
open CcRelay.Core
open CcRelay.Core.Properties.Generators

let private page
    (catalogue: ModelInfo list)
    (limit: int)
    (afterId: string option)
    (beforeId: string option)
    : ModelPage =
    match Models.page catalogue (Some(string limit)) afterId beforeId with
    | Ok page -> page
    | Error e -> failwith e

let private catalogueAndLimit = Gen.zip catalogue pageLimit |> Check.arb

let private catalogueLimitAndCursor =
    gen {
        let! catalogue =
            catalogue
            |> Gen.map (fun c ->
                if c.IsEmpty then
                    [
                        {
                            Id = "only"
                            DisplayName = "only"
                            CreatedAt = Models.createdAt
                            Provider = "p"
                        }
                    ]
                else
                    c)

        let! limit = pageLimit
        let! cursor = Gen.choose (0, catalogue.Length - 1)
        return catalogue, limit, cursor
    }
    |> Check.arb

[<Fact>]
let ``paging forward with after_id = last_id visits every model exactly once, in order`` () =
    Check.property (
        Prop.forAll catalogueAndLimit (fun (catalogue, limit) ->
            let rec walk (after: string option) (pages: ModelPage list) =
                let current = page catalogue limit after None

                if current.HasMore then
                    walk (Some (List.last current.Data).Id) (current :: pages)
                else
                    List.rev (current :: pages)

            let pages = walk None []
            Assert.Equal<ModelInfo list>(catalogue, pages |> List.collect _.Data)
            // every page but the last is full
            for p in List.take (pages.Length - 1) pages do
                Assert.Equal(limit, p.Data.Length)

            Assert.Equal((catalogue.Length + limit - 1) / limit |> max 1, pages.Length))
    )

[<Fact>]
let ``paging backward with before_id = first_id visits every earlier model exactly once, in order`` () =
    Check.property (
        Prop.forAll catalogueLimitAndCursor (fun (catalogue, limit, cursor) ->
            let rec walk (before: string) (pages: ModelPage list) =
                let current = page catalogue limit None (Some before)

                if current.HasMore then
                    walk current.Data.Head.Id (current :: pages)
                else
                    current :: pages

            // pages come newest-first; reversed they read in catalogue order
            let pages = walk catalogue[cursor].Id []
            Assert.Equal<ModelInfo list>(List.take cursor catalogue, pages |> List.collect _.Data)
            // every page but the oldest is full
            for p in List.tail pages do
                Assert.Equal(limit, p.Data.Length))
    )

[<Fact>]
let ``a page from any cursor respects the limit and tells whether more lie beyond`` () =
    Check.property (
        Prop.forAll catalogueLimitAndCursor (fun (catalogue, limit, cursor) ->
            let id = catalogue[cursor].Id
            let after = page catalogue limit (Some id) None
            let before = page catalogue limit None (Some id)
            let first = page catalogue limit None None

            let rest = List.skip (cursor + 1) catalogue
            Assert.Equal<ModelInfo list>(List.truncate limit rest, after.Data)
            Assert.Equal(rest.Length > limit, after.HasMore)

            let earlier = List.take cursor catalogue
            Assert.Equal<ModelInfo list>(earlier |> List.skip (max 0 (earlier.Length - limit)), before.Data)
            Assert.Equal(earlier.Length > limit, before.HasMore)

            Assert.Equal<ModelInfo list>(List.truncate limit catalogue, first.Data)
            Assert.Equal(catalogue.Length > limit, first.HasMore)

            for p in [ after; before; first ] do
                Assert.True(p.Data.Length <= limit))
    )

[<Fact>]
let ``paging forward from a cursor and backward from the next page's first model meet`` () =
    Check.property (
        Prop.forAll catalogueLimitAndCursor (fun (catalogue, limit, cursor) ->
            let forward = page catalogue limit (Some catalogue[cursor].Id) None

            match forward.Data with
            | [] -> Assert.Equal(catalogue.Length - 1, cursor)
            | first :: _ ->
                let back = page catalogue limit None (Some first.Id)
                Assert.Equal(catalogue[cursor], List.last back.Data))
    )

[<Fact>]
let ``the catalogue holds each enabled provider's models once, first provider first`` () =
    let providers =
        gen {
            let! count = Gen.choose (0, 5)

            return!
                Gen.listOfLength
                    count
                    (Gen.zip
                        (Gen.elements [ true; true; false ])
                        (Gen.listOf (Gen.elements [ "a"; "b"; "c"; "d"; "e"; "f" ]) |> Gen.resize 5))
        }
        |> Gen.map (
            List.mapi (fun i (enabled, models) -> {
                Config.defaultProvider $"p%d{i}" ProviderType.Zai (Uri "https://example.test") with
                    Enabled = enabled
                    Models = models
            })
        )
        |> Check.arb

    Check.property (
        Prop.forAll providers (fun providers ->
            let expected =
                [
                    for p in providers do
                        if p.Enabled then
                            for m in p.Models -> m, p.Name
                ]
                |> List.fold
                    (fun acc (m, p) ->
                        if List.exists (fst >> (=) m) acc then
                            acc
                        else
                            acc @ [ m, p ])
                    []

            let actual =
                Models.catalogue {
                    Config.defaults with
                        Providers = providers
                }

            Assert.Equal<(string * string) list>(expected, actual |> List.map (fun m -> m.Id, m.Provider)))
    )
