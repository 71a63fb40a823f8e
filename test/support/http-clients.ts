/**
 * The HTTP clients a trading bot actually uses, each reduced to "send one
 * request to the echo server and return the IP it saw". Shared by the
 * mock-proxy and real-proxy routing suites so both drive the same roads.
 */
import http from 'node:http';
import https from 'node:https';
import { request as undiciRequest } from 'undici';
import axios from 'axios';
import got from 'got';
import nodeFetch from 'node-fetch';
import WebSocket from 'ws';
import { testCa, type EchoServer } from '../../src/testing/index.js';
import { readJson } from './scenario.js';

export type HttpClient = () => Promise<{ ip: string }>;


/** One ws message to the echo server; resolves with its reply (`ip`: the egress it saw). */
export function wsExchange(url: string): Promise<{ ip: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca: testCa });
    ws.once('open', () => ws.send('hello'));
    ws.once('message', (data) => {
      resolve(JSON.parse(String(data)));
      ws.close();
    });
    ws.once('error', reject);
  });
}

function globalWsExchange(url: string): Promise<{ ip: string }> {
  return new Promise((resolve, reject) => {
    const ws = new (globalThis as unknown as { WebSocket: typeof globalThis.WebSocket }).WebSocket(url);
    ws.onopen = () => ws.send('hello');
    ws.onmessage = (ev) => {
      resolve(JSON.parse(String(ev.data)));
      ws.close();
    };
    ws.onerror = (ev) => reject(new Error(`global WebSocket failed: ${String((ev as { message?: string }).message ?? 'error')}`));
  });
}

export const httpClients = (echo: EchoServer): Record<string, HttpClient> => ({
  'global fetch http': async () => (await fetch(`${echo.httpUrl}/f`)).json() as Promise<{ ip: string }>,
  'global fetch https POST': async () =>
    (await fetch(`${echo.httpsUrl}/p`, { method: 'POST', body: 'abc', headers: { 'content-length': '3' } })).json() as Promise<{ ip: string }>,
  'npm undici request': async () => (await undiciRequest(`${echo.httpUrl}/u`)).body.json() as Promise<{ ip: string }>,
  'http.get': () => new Promise((resolve, reject) => http.get(`${echo.httpUrl}/h`, (res) => readJson<{ ip: string }>(res).then(resolve, reject)).on('error', reject)),
  'https.get': () =>
    new Promise((resolve, reject) => https.get(`${echo.httpsUrl}/s`, { ca: testCa }, (res) => readJson<{ ip: string }>(res).then(resolve, reject)).on('error', reject)),
  'axios (env proxy)': async () => (await axios.get(`${echo.httpUrl}/a`)).data,
  'axios https (env proxy)': async () => (await axios.get(`${echo.httpsUrl}/as`, { httpsAgent: new https.Agent({ ca: testCa }) })).data,
  got: async () => got(`${echo.httpsUrl}/g`, { https: { certificateAuthority: testCa } }).json(),
  'node-fetch': async () => (await nodeFetch(`${echo.httpsUrl}/n`, { agent: new https.Agent({ ca: testCa }) })).json() as Promise<{ ip: string }>,
  'ws ws://': () => wsExchange(`${echo.wsUrl}/w`),
  'ws wss://': () => wsExchange(`${echo.wssUrl}/ws`),
  ...(typeof globalThis.WebSocket === 'function' && Number(process.versions.node.split('.')[0]) >= 22
    ? { 'global WebSocket': () => globalWsExchange(`${echo.wsUrl}/gw`) }
    : {}),
});

