// The Argo CD health check of examples/argocd runs here in a real Lua VM (fengari, Lua 5.3 in JavaScript;
// Argo CD itself runs gopher-lua 5.1, and the script uses only what both have) against sample statuses.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { lauxlib, lua, lualib, to_luastring } from 'fengari';
import { CONDITION_TYPES, GROUP, KIND, REASONS, RESTORE_KIND } from '../../src/api/index.js';

const checks = (
  parse(readFileSync('examples/argocd/argocd-cm-health.yaml', 'utf8')) as { data: Record<string, string> }
).data;
const scriptFor = (kind: string) => checks[`resource.customizations.health.${GROUP}_${kind}`]!;

/** Runs the kind's health script with `obj` set, as Argo CD does. */
function health(obj: unknown, script = scriptFor(KIND)): { status: string; message: string } {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  lua.lua_newtable(L);
  pushValue(L, obj);
  lua.lua_setglobal(L, to_luastring('obj'));
  lua.lua_pop(L, 1);
  const wrapped = `local function check()\n${script}\nend\nlocal hs = check()\nreturn hs.status, hs.message`;
  if (
    lauxlib.luaL_loadstring(L, to_luastring(wrapped)) !== lua.LUA_OK ||
    lua.lua_pcall(L, 0, 2, 0) !== lua.LUA_OK
  )
    throw new Error(`lua: ${lua.lua_tojsstring(L, -1)}`);
  return { status: lua.lua_tojsstring(L, -2), message: lua.lua_tojsstring(L, -1) };
}

function pushValue(L: unknown, v: unknown): void {
  if (v === null || v === undefined) lua.lua_pushnil(L);
  else if (typeof v === 'number')
    if (Number.isInteger(v)) lua.lua_pushinteger(L, v);
    else lua.lua_pushnumber(L, v);
  else if (typeof v === 'boolean') lua.lua_pushboolean(L, v);
  else if (typeof v === 'string') lua.lua_pushstring(L, to_luastring(v));
  else if (Array.isArray(v)) {
    lua.lua_createtable(L, v.length, 0);
    v.forEach((item, i) => {
      pushValue(L, item);
      lua.lua_rawseti(L, -2, i + 1);
    });
  } else {
    lua.lua_createtable(L, 0, 0);
    for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
      pushValue(L, item);
      lua.lua_setfield(L, -2, to_luastring(k));
    }
  }
}

const policy = (generation: number, status?: Record<string, unknown>) => ({
  apiVersion: `${GROUP}/v1alpha1`,
  kind: KIND,
  metadata: { name: 'p', generation },
  ...(status ? { status } : {}),
});
const cond = (type: string, status: string, reason: string, message = 'm') => ({
  type,
  status,
  reason,
  message,
});

describe('Argo CD health check for PullStatePolicy', () => {
  it('is Progressing before the controller wrote any status', () => {
    expect(health(policy(1)).status).toBe('Progressing');
  });

  it('is Progressing while the controller has not observed the latest generation', () => {
    const h = health(
      policy(3, {
        observedGeneration: 2,
        conditions: [cond(CONDITION_TYPES.ready, 'True', REASONS.checkpointing)],
      }),
    );
    expect(h).toEqual({
      status: 'Progressing',
      message: 'Waiting for the controller to observe generation 3',
    });
  });

  it('is Healthy when Ready is True and nothing is degraded', () => {
    const h = health(
      policy(2, {
        observedGeneration: 2,
        conditions: [
          cond(CONDITION_TYPES.degraded, 'False', REASONS.asExpected),
          cond(CONDITION_TYPES.ready, 'True', REASONS.checkpointing, '2 of 2 Pods have a checkpoint'),
        ],
      }),
    );
    expect(h).toEqual({ status: 'Healthy', message: '2 of 2 Pods have a checkpoint' });
  });

  it('is Degraded with the reason while Degraded is True, even if Ready is True', () => {
    const h = health(
      policy(1, {
        observedGeneration: 1,
        conditions: [
          cond(CONDITION_TYPES.degraded, 'True', REASONS.pullFailed, 'Pod a: answered 500'),
          cond(CONDITION_TYPES.ready, 'True', REASONS.checkpointing),
        ],
      }),
    );
    expect(h).toEqual({ status: 'Degraded', message: 'PullFailed: Pod a: answered 500' });
  });

  it('is Degraded for an invalid spec and Progressing while the first checkpoints are taken', () => {
    expect(
      health(
        policy(1, {
          observedGeneration: 1,
          conditions: [
            cond(CONDITION_TYPES.degraded, 'True', REASONS.invalidSpec, 'invalid spec: port'),
            cond(CONDITION_TYPES.ready, 'False', REASONS.invalidSpec, 'invalid spec: port'),
          ],
        }),
      ).status,
    ).toBe('Degraded');
    expect(
      health(
        policy(1, {
          observedGeneration: 1,
          conditions: [cond(CONDITION_TYPES.ready, 'False', REASONS.waitingForCheckpoint, '0 of 1 Pods')],
        }),
      ),
    ).toEqual({ status: 'Progressing', message: 'WaitingForFirstCheckpoint: 0 of 1 Pods' });
  });

  it('the Application installs this repository at its root, with status drift ignored', () => {
    const app = parse(readFileSync('examples/argocd/application.yaml', 'utf8')) as {
      spec: {
        source: { path: string };
        syncPolicy: { syncOptions: string[] };
        ignoreDifferences: { jsonPointers: string[] }[];
      };
    };
    expect(app.spec.source.path).toBe('.');
    expect(app.spec.syncPolicy.syncOptions).toContain('ServerSideApply=true');
    expect(app.spec.ignoreDifferences[0]!.jsonPointers).toContain('/status');
  });
});

describe('Argo CD health check for PullStateRestore', () => {
  const restore = (status?: Record<string, unknown>) =>
    health(
      {
        apiVersion: `${GROUP}/v1alpha1`,
        kind: RESTORE_KIND,
        metadata: { name: 'r' },
        ...(status ? { status } : {}),
      },
      scriptFor(RESTORE_KIND),
    );

  it('is Progressing until the controller acted on it', () => {
    expect(restore()).toEqual({ status: 'Progressing', message: 'Restore not yet acted on' });
    expect(restore({ phase: 'Running', message: 'restoring 2 Pods' })).toEqual({
      status: 'Progressing',
      message: 'Restore Running: restoring 2 Pods',
    });
  });

  it('is Healthy when it Succeeded and Degraded with the reason when it Failed', () => {
    expect(restore({ phase: 'Succeeded', message: 'restored 1 Pod' })).toEqual({
      status: 'Healthy',
      message: 'restored 1 Pod',
    });
    expect(restore({ phase: 'Failed', message: 'PullStatePolicy "nope" does not exist' })).toEqual({
      status: 'Degraded',
      message: 'PullStatePolicy "nope" does not exist',
    });
  });
});
