from tests.conftest import sign_up, create_community

async def test_probe(client, owner, community):
    cid = community["id"]
    h = owner.headers
    for r in [
        await client.post("/api/v1/communities", json={"name": "x", "foo": 1}, headers=h),
        await client.get(f"/api/v1/communities/{cid}/members?limit=101", headers=h),
        await client.get(f"/api/v1/communities/{cid}/members?after=99999999999999999999", headers=h),
        await client.get(f"/api/v1/communities/99999999999999999999", headers=h),
        await client.get(f"/api/v1/communities/{cid}/hubs/99999999999999999999", headers=h),
        await client.post("/api/v1/communities", content=b'{"name": "' + b"x" * 1_100_000 + b'"}', headers={**h, "content-type": "application/json"}),
        await client.post("/api/v1/communities", json={"name": "y", "default_currency": "XYZ"}, headers=h),
        await client.post("/api/v1/communities", json={"name": "y", "support_email": "nope"}, headers=h),
        await client.post("/api/v1/communities", json={"name": "Makers Guild"}, headers=h),
        await client.post("/api/v1/communities", json={"name": "日本"}, headers=h),
        await client.post("/api/v1/communities", json=[1], headers=h),
        await client.post("/api/v1/communities", json={"name": "z\x00z"}, headers=h),
    ]:
        print(r.status_code, r.headers.get("content-type"), r.text[:300])
