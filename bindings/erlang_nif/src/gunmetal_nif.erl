%% The NIF under gunmetal (c_src/gunmetal_nif.c). Internal: use gunmetal.
-module(gunmetal_nif).

-export([open/4, open_unix/3, open_fd/3, request/9, connect/6, data/5, data_dropped/1, cancel/2,
	update_flow/3, close/1, shutdown/1, set_owner/3, owner/1, info/1,
	stream_info/2, tunnel_protocol/1, ws_upgrade/6, ws_send/3, ping/3, features/0, version/0,
	stats/0, request_big/9, exit_note/1, exit_reason/1, tls_session_cache/2,
	ssl_session_cache/0, cookies_get/1, cookies_set/2, set_chain/1]).

-on_load(init/0).

init() ->
	case erlang:load_nif(filename:join(priv_dir(), "gunmetal_nif"), 0) of
		ok -> ssl_session_cache();
		Error -> Error
	end.

%% One TLS client session cache per process, sized as Erlang's ssl sizes its
%% own (one per VM): by the ssl application's session_cache_client_max and
%% session_lifetime (seconds), read at load (and again when called: the
%% tests do). ssl is loaded (not started) so that its env from sys.config or
%% -ssl flags is there.
ssl_session_cache() ->
	_ = application:load(ssl),
	Max = case application:get_env(ssl, session_cache_client_max) of
		{ok, M} when is_integer(M), M > 0, M =< 16#7fffffff -> M;
		_ -> 1000
	end,
	Ms = case application:get_env(ssl, session_lifetime) of
		{ok, S} when is_integer(S), S > 0, S =< 16#7fffffff -> S * 1000;
		_ -> 86400000
	end,
	case tls_session_cache(Max, Ms) of
		ok -> ok;
		Error -> {error, {ssl_session_cache, Max, Ms, Error}}
	end.

priv_dir() ->
	case code:priv_dir(gunmetal) of
		{error, bad_name} ->
			%% Not installed as an application: priv/ next to ebin/.
			filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
		Dir ->
			Dir
	end.

-define(NIF, erlang:nif_error({not_loaded, ?MODULE})).

open(_ConnPid, _Host, _Port, _Json) -> ?NIF.
open_unix(_ConnPid, _Path, _Json) -> ?NIF.
open_fd(_ConnPid, _Fd, _Json) -> ?NIF.
request(_ConnPid, _Method, _Path, _Headers, _Body, _IsStream, _ReplyTo, _Flow, _Tunnel) -> ?NIF.
connect(_ConnPid, _DestJson, _Headers, _ReplyTo, _Flow, _Tunnel) -> ?NIF.
data(_ConnPid, _StreamRef, _IsFin, _Data, _FromConn) -> ?NIF.
data_dropped(_StreamRef) -> ?NIF.
cancel(_ConnPid, _StreamRef) -> ?NIF.
update_flow(_ConnPid, _StreamRef, _Flow) -> ?NIF.
close(_ConnPid) -> ?NIF.
shutdown(_ConnPid) -> ?NIF.
set_owner(_ConnPid, _Caller, _NewOwner) -> ?NIF.
owner(_ConnPid) -> ?NIF.
info(_ConnPid) -> ?NIF.
stream_info(_ConnPid, _StreamRef) -> ?NIF.
tunnel_protocol(_StreamRef) -> ?NIF.
cookies_get(_ConnPid) -> ?NIF.
set_chain(_ConnPid) -> ?NIF.
cookies_set(_ConnPid, _Json) -> ?NIF.
ws_upgrade(_ConnPid, _Path, _Headers, _Json, _ReplyTo, _Tunnel) -> ?NIF.
ws_send(_ConnPid, _StreamRef, _Frames) -> ?NIF.
ping(_ConnPid, _ReplyTo, _Tunnel) -> ?NIF.
tls_session_cache(_Max, _LifetimeMs) -> ?NIF.
features() -> ?NIF.
version() -> ?NIF.
stats() -> ?NIF.
request_big(_ConnPid, _Method, _Path, _Headers, _Body, _Size, _ReplyTo, _Flow, _Tunnel) -> ?NIF.
exit_note(_Reason) -> ?NIF.
exit_reason(_Pid) -> ?NIF.
