// docs/http-clients.md: axios, ky, ofetch and server-sent events on the signed fetch.
// Type-checked by `npm run typecheck`; test/readme.test.ts checks that the page's block stands
// here verbatim.
import type { DPoPClient } from 'dpop-spa'
import axios from 'axios'
import ky from 'ky'
import { ofetch } from 'ofetch'
import { EventSource } from 'eventsource'

// axios >= 1.12.0: its fetch adapter takes a custom fetch in env.fetch. No User-Agent header:
// Firefox would send axios's, and a cross-origin API then has to allow it in CORS.
const http = axios.create({
  adapter: 'fetch',
  env: { fetch: auth.fetch },
  headers: { 'User-Agent': false },
})
const { data: me } = await http.get('https://api.example.com/me')

// ky and ofetch take a fetch too.
const kyApi = ky.create({ fetch: auth.fetch })
const orders = await kyApi.post('https://api.example.com/orders', { json: { item: 42 } }).json()
const $api = ofetch.create({}, { fetch: auth.fetch })
const profile = await $api('https://api.example.com/me')

// Server-sent events: the eventsource package (v3+) opens and reopens the stream through fetch.
const events = new EventSource('https://api.example.com/events', { fetch: auth.fetch })
events.onmessage = (event) => console.info(event.data)

// Not in the page: the client from createDPoPClient (docs/client.md).
declare const auth: DPoPClient
