%% gunmetal: Gun 2.x's API on the gunmetal engine.
%%
%% Code written for Gun runs with the module name changed: the functions
%% have Gun's names, arities and return values, the owner receives Gun's
%% message tuples ({gun_up, ConnPid, Protocol}, {gun_response, ConnPid,
%% StreamRef, IsFin, Status, Headers}, ...), and ConnPid is a real process
%% that exits with Gun's exit reasons, so monitors, links and 'DOWN'
%% messages behave as they do with Gun. The messages are sent by the NIF
%% straight to the owner or the stream's reply_to; ConnPid only stands for
%% the connection (and holds body pieces sent before the connection is up).
%%
%% Deviations from Gun (see README.md): options that take Erlang funs or
%% modules (retry_fun, cookie stores other than "on") are refused or
%% mapped, as the engine cannot call Erlang code (event_handler runs in
%% ConnPid, from the library's trace events; Gun's dbg trace => true is
%% refused); content_handlers runs Gun's gun_sse_h and gun_data_h in the
%% engine (the messages are Gun's) and a handler module of the user's own
%% in ConnPid (chain/2); the cookie store is the
%% engine's, read and seeded with cookies/1 and set_cookies/2;
%% stream_info/2 of an HTTP/1.1 CONNECT stream whose tunnel is up is
%% undefined (the connection became the tunnel; Gun keeps its tunnel map);
%% info/1 has no socket; ws_upgrade/ws_send/ping answer
%% {error, unsupported} while the loaded library lacks WebSocket and ping.
-module(gunmetal).

%% Connection.
-export([open/2, open/3, open_unix/2, open_fd/2, set_owner/2, info/1, close/1, shutdown/1]).

%% Requests.
-export([delete/2, delete/3, delete/4, get/2, get/3, get/4, head/2, head/3, head/4,
	options/2, options/3, options/4, patch/3, patch/4, patch/5, post/3, post/4, post/5,
	put/3, put/4, put/5]).
-export([headers/4, headers/5, request/5, request/6]).
-export([data/4]).
-export([connect/2, connect/3, connect/4]).
-export([ping/1, ping/2]).

%% Awaiting and flushing messages.
-export([await/2, await/3, await/4, await_body/2, await_body/3, await_body/4,
	await_up/1, await_up/2, await_up/3, flush/1]).

%% Streams.
-export([update_flow/3, cancel/2, stream_info/2]).

%% Websocket.
-export([ws_upgrade/2, ws_upgrade/3, ws_upgrade/4, ws_send/3]).

%% gunmetal's own.
-export([features/0, version/0, cookies/1, set_cookies/2]).

%% Internal.
-export([conn_init/3]).

%% Request bodies larger than this are sent by ConnPid, from a dirty
%% scheduler (see do_request/7).
-define(DIRTY_BODY, 65536).

%% The CONNECTs a connection process remembers for stream_info/2.
-define(MAX_TUNNELS, 1024).

-type req_headers() :: [{binary() | string() | atom(), iodata()}]
	| #{binary() | string() | atom() => iodata()}.
%% A stream inside a tunnel (req_opts / ws_opts tunnel) is Gun's list
%% [TunnelRef..., Ref].
-type stream_ref() :: reference() | [reference()].
-type resp_headers() :: [{binary(), binary()}].
-type ws_frame() :: close | ping | pong
	| {text | binary | close | ping | pong, iodata()}
	| {close, 1000..4999, iodata()}.
-export_type([req_headers/0, stream_ref/0, resp_headers/0, ws_frame/0]).

%% Connection.

-spec open(inet:hostname() | inet:ip_address() | binary(), inet:port_number())
	-> {ok, pid()} | {error, any()}.
open(Host, Port) ->
	open(Host, Port, #{}).

-spec open(inet:hostname() | inet:ip_address() | binary(), inet:port_number(), map())
	-> {ok, pid()} | {error, any()}.
open(Host, Port, Opts) when is_list(Host); is_atom(Host); is_tuple(Host); is_binary(Host) ->
	do_open({tcp, Host, host_bin(Host), Port}, Opts).

-spec open_unix(string() | binary(), map()) -> {ok, pid()} | {error, any()}.
open_unix(SocketPath, Opts) ->
	do_open({unix, SocketPath, iolist_to_binary(SocketPath)}, Opts).

%% gen_tcp's {fd, Fd}: a connected TCP or Unix stream socket of the
%% caller's (e.g. socket:getopt(S, {otp, fd})). The engine runs the
%% connection on a duplicate of Fd, which shares the socket (and its file
%% status flags) with the caller's: do not read, write or shutdown the
%% caller's socket, and close it only once the connection ended (after
%% close/1, or its 'DOWN'): Erlang's socket:close/1 and gen_tcp:close/1 set
%% the shared descriptor to blocking mode first, after which the engine's
%% reads would block and close/1 would wait for the peer. No reconnect:
%% retry must be 0 (the default here), a drop is a gun_down then the exit.
%% TLS runs on it with transport => tls (give tls_opts
%% server_name_indication, or verify_none).
-spec open_fd(non_neg_integer(), map()) -> {ok, pid()} | {error, any()}.
open_fd(Fd, Opts) when is_integer(Fd), Fd >= 0, is_map(Opts) ->
	do_open({fd, Fd}, maps:merge(#{retry => 0}, Opts)).

host_bin(H) when is_binary(H) -> H;
host_bin(H) when is_atom(H) -> atom_to_binary(H);
host_bin(H) when is_list(H) ->
	case unicode:characters_to_binary(H) of
		B when is_binary(B) -> B;
		_ -> error(badarg)
	end;
host_bin(H) when is_tuple(H) ->
	case inet:ntoa(H) of
		{error, _} -> error(badarg);
		S -> list_to_binary(S)
	end.

do_open(Where, Opts0) when is_map(Opts0) ->
	Opts1 = case Opts0 of
		#{transport := ssl} -> Opts0#{transport => tls};
		_ -> Opts0
	end,
	case conn_chains(Opts1) of
		{error, _} = Error0 -> Error0;
		{Opts, Chains} -> do_open(Where, Opts0, Opts, Chains)
	end;
do_open(_, Opts) ->
	{error, {options, Opts}}.

%% http_opts/http2_opts content_handlers with a module of the user's own:
%% the engine gets gun_data_h and ConnPid runs the chain (chain/2).
conn_chains(Opts) ->
	lists:foldl(fun
		(_, {error, _} = E) -> E;
		({Key, Proto}, {O, Chains}) ->
			case O of
				#{Key := PO = #{content_handlers := CH}} ->
					try own_chain(CH) of
						false -> {O, Chains};
						true -> {O#{Key => PO#{content_handlers => [gun_data_h]}}, Chains#{Proto => CH}}
					catch error:{badarg, _} ->
						{error, {options, {Proto, {content_handlers, CH}}}}
					end;
				_ -> {O, Chains}
			end
	end, {Opts, #{}}, [{http_opts, http}, {http2_opts, http2}]).

do_open(Where, Opts0, Opts, Chains) ->
	case gunmetal_opts:to_json(Opts) of
		{error, _} = Error ->
			Error;
		{ok, Json0} ->
			Json = iolist_to_binary(Json0),
			Owner = self(),
			{OriginHost, OriginPort} = case Where of
				{tcp, H, _, P} -> {H, P};
				{unix, _, _} -> {<<"localhost">>, 0};
				{fd, _} -> {<<"localhost">>, 0}
			end,
			Static = #{origin_host => OriginHost, origin_port => OriginPort,
				unix => element(1, Where) =:= unix,
				event_handler => maps:get(event_handler, Opts, undefined), opts => Opts0,
				chains => Chains},
			Spawn = case maps:get(supervise, Opts, true) of
				false -> spawn_link;
				_ -> spawn
			end,
			ConnPid = erlang:Spawn(?MODULE, conn_init, [Owner, Static, self()]),
			Res = case Where of
				{tcp, _, HostBin, Port} when is_integer(Port) ->
					gunmetal_nif:open(ConnPid, HostBin, Port, Json);
				{tcp, _, _, _} ->
					{error, einval, <<"port must be an integer">>};
				{unix, _, PathBin} ->
					gunmetal_nif:open_unix(ConnPid, PathBin, Json);
				{fd, Fd} ->
					gunmetal_nif:open_fd(ConnPid, Fd, Json)
			end,
			case Res of
				ok when map_size(Chains) > 0 ->
					ok = gunmetal_nif:set_chain(ConnPid),
					{ok, ConnPid};
				ok ->
					{ok, ConnPid};
				{error, Code, Msg} ->
					unlink(ConnPid),
					exit(ConnPid, kill),
					case Code of
						options -> {error, gunmetal_opts:option_error(Msg, Opts)};
						einval -> {error, {badarg, Msg}};
						_ -> {error, {Code, Msg}}
					end
			end
	end.

-spec set_owner(pid(), pid()) -> ok.
set_owner(ServerPid, NewOwnerPid) when is_pid(ServerPid), is_pid(NewOwnerPid) ->
	case gunmetal_nif:set_owner(ServerPid, self(), NewOwnerPid) of
		ok ->
			%% ConnPid takes the new owner from the NIF (the message only
			%% wakes it), so it follows even if we die before sending this.
			ServerPid ! '$gunmetal_owner',
			ok;
		{error, badstate, Msg} ->
			self() ! {gun_error, ServerPid, {badstate, Msg}},
			ok;
		_ ->
			ok
	end.

-spec info(pid()) -> map().
info(ServerPid) when is_pid(ServerPid) ->
	MRef = monitor(process, ServerPid),
	ServerPid ! {'$gunmetal_info', self(), MRef},
	Static = receive
		{MRef, S} ->
			demonitor(MRef, [flush]),
			S;
		{'DOWN', MRef, process, ServerPid, _} ->
			exit({noproc, {?MODULE, info, [ServerPid]}})
	end,
	{KV, Hops} = case gunmetal_nif:info(ServerPid) of
		{ok, L} -> {maps:from_list(L), [intermediary(V) || {<<"intermediary">>, V} <- L]};
		_ -> {#{<<"state">> => <<"closed">>}, []}
	end,
	Transport = binary_to_atom(maps:get(<<"transport">>, KV, <<"tcp">>)),
	Info0 = #{
		owner => maps:get(owner, Static),
		socket => undefined,
		transport => Transport,
		state_name => state_name(maps:get(<<"state">>, KV, <<"closed">>)),
		origin_scheme => case Transport of tls -> <<"https">>; _ -> <<"http">> end,
		%% Through proxies, the origin at the end of the tunnels (Gun's);
		%% its host as a string, as Gun's when given one.
		origin_host => case {Hops, KV} of
			{[_|_], #{<<"origin_host">> := OH}} -> binary_to_list(OH);
			_ -> maps:get(origin_host, Static)
		end,
		origin_port => case {Hops, KV, Static} of
			{[_|_], #{<<"origin_port">> := OP}, _} -> binary_to_integer(OP);
			{_, _, #{unix := true}} -> case Transport of tls -> 443; _ -> 80 end;
			_ -> maps:get(origin_port, Static)
		end,
		intermediaries => Hops,
		%% The store lives in the engine (Gun's is {Module, State}):
		%% {gunmetal, ConnPid}, read and seeded with cookies/1 and
		%% set_cookies/2.
		cookie_store => case KV of
			#{<<"cookie_store">> := <<"true">>} -> {gunmetal, ServerPid};
			_ -> undefined
		end,
		event_handler => case maps:get(event_handler, Static, undefined) of
			{EvMod, _} -> EvMod;
			_ -> undefined
		end,
		event_handler_state => maps:get(event_handler_state, Static, undefined)
	},
	%% The local address: sock_ip and sock_port (gm_info as the header
	%% documents it), or "local" as ip:port (libgunmetal 0.1.0).
	Local = case KV of
		#{<<"sock_ip">> := SIP, <<"sock_port">> := SPort} ->
			case {inet:parse_address(binary_to_list(SIP)), catch binary_to_integer(SPort)} of
				{{ok, IP0}, Port0} when is_integer(Port0) -> {ok, IP0, Port0};
				_ -> error
			end;
		#{<<"local">> := LocalAddr} -> split_addr(LocalAddr);
		_ -> error
	end,
	Info1 = case Local of
		{ok, IP, Port} -> Info0#{sock_ip => IP, sock_port => Port};
		error -> Info0
	end,
	case maps:get(<<"protocol">>, KV, <<>>) of
		<<>> -> Info1;
		Proto -> Info1#{protocol => binary_to_atom(Proto)}
	end.

%% gm_info's "TYPE HOST PORT TRANSPORT PROTOCOL" as Gun's intermediary map.
intermediary(V) ->
	[Type, Host, Port, Transport, Protocol] = binary:split(V, <<" ">>, [global]),
	#{type => binary_to_atom(Type), host => binary_to_list(Host), port => binary_to_integer(Port),
		transport => binary_to_atom(Transport), protocol => binary_to_atom(Protocol)}.

state_name(<<"connected">>) -> connected;
state_name(<<"connecting">>) -> connecting;
state_name(<<"not_connected">>) -> not_connected;
state_name(<<"closing">>) -> closing;
state_name(Other) -> binary_to_atom(Other).

split_addr(Bin) ->
	case string:split(Bin, ":", trailing) of
		[Host0, PortBin] ->
			Host = string:trim(Host0, both, "[]"),
			case {inet:parse_address(binary_to_list(Host)), catch binary_to_integer(PortBin)} of
				{{ok, IP}, Port} when is_integer(Port) -> {ok, IP, Port};
				_ -> error
			end;
		_ ->
			error
	end.

%% Gun's close/1 stops the connection process (supervisor:terminate_child):
%% it has exited, with reason shutdown, when close/1 returns.
-spec close(pid()) -> ok | {error, not_found}.
close(ServerPid) when is_pid(ServerPid) ->
	case gunmetal_nif:close(ServerPid) of
		ok ->
			MRef = monitor(process, ServerPid),
			exit(ServerPid, shutdown),
			receive
				{'DOWN', MRef, process, ServerPid, _} -> ok
			after 5000 ->
				exit(ServerPid, kill),
				receive {'DOWN', MRef, process, ServerPid, _} -> ok end
			end;
		noconn ->
			{error, not_found}
	end.

-spec shutdown(pid()) -> ok.
shutdown(ServerPid) when is_pid(ServerPid) ->
	_ = gunmetal_nif:shutdown(ServerPid),
	ok.

%% Requests.

-spec delete(pid(), iodata()) -> stream_ref().
delete(ServerPid, Path) ->
	request(ServerPid, <<"DELETE">>, Path, [], <<>>).

-spec delete(pid(), iodata(), req_headers()) -> stream_ref().
delete(ServerPid, Path, Headers) ->
	request(ServerPid, <<"DELETE">>, Path, Headers, <<>>).

-spec delete(pid(), iodata(), req_headers(), map()) -> stream_ref().
delete(ServerPid, Path, Headers, ReqOpts) ->
	request(ServerPid, <<"DELETE">>, Path, Headers, <<>>, ReqOpts).

-spec get(pid(), iodata()) -> stream_ref().
get(ServerPid, Path) ->
	request(ServerPid, <<"GET">>, Path, [], <<>>).

-spec get(pid(), iodata(), req_headers()) -> stream_ref().
get(ServerPid, Path, Headers) ->
	request(ServerPid, <<"GET">>, Path, Headers, <<>>).

-spec get(pid(), iodata(), req_headers(), map()) -> stream_ref().
get(ServerPid, Path, Headers, ReqOpts) ->
	request(ServerPid, <<"GET">>, Path, Headers, <<>>, ReqOpts).

-spec head(pid(), iodata()) -> stream_ref().
head(ServerPid, Path) ->
	request(ServerPid, <<"HEAD">>, Path, [], <<>>).

-spec head(pid(), iodata(), req_headers()) -> stream_ref().
head(ServerPid, Path, Headers) ->
	request(ServerPid, <<"HEAD">>, Path, Headers, <<>>).

-spec head(pid(), iodata(), req_headers(), map()) -> stream_ref().
head(ServerPid, Path, Headers, ReqOpts) ->
	request(ServerPid, <<"HEAD">>, Path, Headers, <<>>, ReqOpts).

-spec options(pid(), iodata()) -> stream_ref().
options(ServerPid, Path) ->
	request(ServerPid, <<"OPTIONS">>, Path, [], <<>>).

-spec options(pid(), iodata(), req_headers()) -> stream_ref().
options(ServerPid, Path, Headers) ->
	request(ServerPid, <<"OPTIONS">>, Path, Headers, <<>>).

-spec options(pid(), iodata(), req_headers(), map()) -> stream_ref().
options(ServerPid, Path, Headers, ReqOpts) ->
	request(ServerPid, <<"OPTIONS">>, Path, Headers, <<>>, ReqOpts).

-spec patch(pid(), iodata(), req_headers()) -> stream_ref().
patch(ServerPid, Path, Headers) ->
	headers(ServerPid, <<"PATCH">>, Path, Headers).

-spec patch(pid(), iodata(), req_headers(), iodata() | map()) -> stream_ref().
patch(ServerPid, Path, Headers, ReqOpts) when is_map(ReqOpts) ->
	headers(ServerPid, <<"PATCH">>, Path, Headers, ReqOpts);
patch(ServerPid, Path, Headers, Body) ->
	request(ServerPid, <<"PATCH">>, Path, Headers, Body).

-spec patch(pid(), iodata(), req_headers(), iodata(), map()) -> stream_ref().
patch(ServerPid, Path, Headers, Body, ReqOpts) ->
	request(ServerPid, <<"PATCH">>, Path, Headers, Body, ReqOpts).

-spec post(pid(), iodata(), req_headers()) -> stream_ref().
post(ServerPid, Path, Headers) ->
	headers(ServerPid, <<"POST">>, Path, Headers).

-spec post(pid(), iodata(), req_headers(), iodata() | map()) -> stream_ref().
post(ServerPid, Path, Headers, ReqOpts) when is_map(ReqOpts) ->
	headers(ServerPid, <<"POST">>, Path, Headers, ReqOpts);
post(ServerPid, Path, Headers, Body) ->
	request(ServerPid, <<"POST">>, Path, Headers, Body).

-spec post(pid(), iodata(), req_headers(), iodata(), map()) -> stream_ref().
post(ServerPid, Path, Headers, Body, ReqOpts) ->
	request(ServerPid, <<"POST">>, Path, Headers, Body, ReqOpts).

-spec put(pid(), iodata(), req_headers()) -> stream_ref().
put(ServerPid, Path, Headers) ->
	headers(ServerPid, <<"PUT">>, Path, Headers).

-spec put(pid(), iodata(), req_headers(), iodata() | map()) -> stream_ref().
put(ServerPid, Path, Headers, ReqOpts) when is_map(ReqOpts) ->
	headers(ServerPid, <<"PUT">>, Path, Headers, ReqOpts);
put(ServerPid, Path, Headers, Body) ->
	request(ServerPid, <<"PUT">>, Path, Headers, Body).

-spec put(pid(), iodata(), req_headers(), iodata(), map()) -> stream_ref().
put(ServerPid, Path, Headers, Body, ReqOpts) ->
	request(ServerPid, <<"PUT">>, Path, Headers, Body, ReqOpts).

-spec headers(pid(), iodata(), iodata(), req_headers()) -> stream_ref().
headers(ServerPid, Method, Path, Headers) ->
	headers(ServerPid, Method, Path, Headers, #{}).

-spec headers(pid(), iodata(), iodata(), req_headers(), map()) -> stream_ref().
headers(ServerPid, Method, Path, Headers, ReqOpts) ->
	do_request(ServerPid, Method, Path, Headers, <<>>, true, ReqOpts).

-spec request(pid(), iodata(), iodata(), req_headers(), iodata()) -> stream_ref().
request(ServerPid, Method, Path, Headers, Body) ->
	request(ServerPid, Method, Path, Headers, Body, #{}).

-spec request(pid(), iodata(), iodata(), req_headers(), iodata(), map()) -> stream_ref().
request(ServerPid, Method, Path, Headers, Body, ReqOpts) ->
	do_request(ServerPid, Method, Path, Headers, Body, false, ReqOpts).

do_request(ServerPid, Method, Path, Headers, Body, IsStream, ReqOpts) when is_map(ReqOpts) ->
	Tunnel = get_tunnel(ReqOpts),
	Flow = case maps:get(flow, ReqOpts, infinity) of
		infinity -> 0;
		F when is_integer(F), F > 0, F < 16#80000000 -> F;
		_ -> error(badarg)
	end,
	{ReplyPid0, ReplyFun0} = reply_to(ServerPid, ReqOpts),
	%% A chain with handler modules of the user's own runs in ConnPid on
	%% plain DATA (gun_data_h in the engine): ConnPid gets the stream's
	%% messages, as for a reply_to fun.
	{ReplyPid, ReplyFun, FlowArg} = case maps:find(content_handlers, ReqOpts) of
		error -> {ReplyPid0, ReplyFun0, Flow};
		{ok, CH} ->
			case own_chain(CH) of
				false ->
					{ReplyPid0, ReplyFun0, {Flow, content_handlers_json(CH)}};
				true when is_pid(ServerPid) ->
					{ServerPid, {'$chain', reply_target(ReplyPid0, ReplyFun0), {init, CH}},
						{Flow, content_handlers_json([gun_data_h])}};
				true ->
					error(badarg)
			end
	end,
	%% Large bodies: a dirty scheduler sends the headers and hands the body
	%% to ConnPid, which sends it in pieces (Gun's process sends it too).
	%% Flattening and copying it here would hold a normal scheduler for
	%% milliseconds per MB. iolist_size/1 yields (and checks the body).
	Size = case IsStream of
		false when is_binary(Body) -> byte_size(Body);
		false when is_list(Body) -> iolist_size(Body);
		_ -> 0
	end,
	Res = case Size > ?DIRTY_BODY of
		true -> gunmetal_nif:request_big(ServerPid, Method, Path, Headers, Body, Size, ReplyPid, FlowArg, Tunnel);
		false -> gunmetal_nif:request(ServerPid, Method, Path, Headers, Body, IsStream, ReplyPid, FlowArg, Tunnel)
	end,
	case Res of
		StreamRef when is_reference(StreamRef); is_list(StreamRef) ->
			register_reply_fun(ServerPid, StreamRef, ReplyFun),
			StreamRef;
		{chain, StreamRef} ->
			%% The connection's own chain (set_chain): ConnPid runs it.
			register_reply_fun(ServerPid, StreamRef, {'$chain', reply_target(ReplyPid, ReplyFun), conn}),
			StreamRef;
		Other ->
			request_failed(ServerPid, ReplyPid, Other, Tunnel)
	end;
do_request(_, _, _, _, _, _, _) ->
	error(badarg).

%% Gun's get_tunnel/1: tunnel => StreamRef of a CONNECT (a reference, or
%% the list of one made inside a tunnel) as the list the new StreamRef
%% starts with; undefined (or no key) for none. Another value: badarg (in
%% Gun, TunnelRef ++ [make_ref()] fails the same way).
get_tunnel(#{tunnel := undefined}) -> undefined;
get_tunnel(#{tunnel := T}) when is_reference(T) -> [T];
get_tunnel(#{tunnel := T = [_|_]}) ->
	_ = length(T) < 64 andalso lists:all(fun is_reference/1, T) orelse error({badarg, {tunnel, T}}),
	T;
get_tunnel(#{tunnel := T}) -> error({badarg, {tunnel, T}});
get_tunnel(_) -> undefined.

%% Gun's make_stream_ref/1, for refs that no message will carry.
make_stream_ref(undefined) -> make_ref();
make_stream_ref(Tunnel) -> Tunnel ++ [make_ref()].

%% Whether a req_opts content_handlers list has a module of the user's own
%% (one neither gun_sse_h nor gun_data_h): such a chain runs in ConnPid
%% (chain/2). gun_sse_h runs in the engine only, so it cannot be mixed with
%% one; a module must be loadable and export Gun's init/5 and handle/3.
own_chain(L) when is_list(L), L =/= [] ->
	Names = [case H of
		{M, Opts} when is_atom(M), is_map(Opts) -> M;
		M when is_atom(M) -> M;
		_ -> error({badarg, {content_handlers, H}})
	end || H <- L],
	case [N || N <- Names, N =/= gun_sse_h, N =/= gun_data_h] of
		[] -> false;
		Own ->
			_ = lists:member(gun_sse_h, Names) andalso error({badarg, iolist_to_binary(io_lib:format(
				"content_handlers: gunmetal runs gun_sse_h in the engine and the handler module ~p "
				"in the connection process; it cannot mix them on one stream", [hd(Own)]))}),
			_ = [case code:ensure_loaded(M) of
				{module, M} ->
					(erlang:function_exported(M, init, 5) andalso erlang:function_exported(M, handle, 3))
						orelse error({badarg, iolist_to_binary(io_lib:format(
							"content_handlers: the handler module ~p does not export init/5 and handle/3", [M]))});
				_ ->
					error({badarg, iolist_to_binary(io_lib:format(
						"content_handlers: the handler module ~p is not loaded", [M]))})
			end || M <- Own],
			true
	end;
own_chain(L) ->
	error({badarg, {content_handlers, L}}).

%% Gun's req_opts content_handlers as the library's JSON list. The
%% library runs Gun's gun_sse_h and gun_data_h itself (as GM_EV_SSE and
%% DATA events, turned into gun_sse and gun_data messages); chains with a
%% module of the user's own do not come here (own_chain/1).
content_handlers_json(L) when is_list(L), L =/= [] ->
	Names = [case H of
		{M, Opts} when is_atom(M), is_map(Opts) -> M;
		M when is_atom(M) -> M;
		_ -> error({badarg, {content_handlers, H}})
	end || H <- L],
	case [N || N <- Names, N =/= gun_sse_h, N =/= gun_data_h] of
		[] -> ok;
		[Own|_] -> error({badarg, iolist_to_binary(io_lib:format(
			"content_handlers: gunmetal runs only gun_sse_h and gun_data_h; "
			"the handler module ~p is not supported", [Own]))})
	end,
	iolist_to_binary(gunmetal_opts:encode({arr, [case H of
		{Mod, Opts} -> {arr, [atom_to_binary(Mod), sse_opts(Opts)]};
		Mod -> atom_to_binary(Mod)
	end || H <- L]}));
content_handlers_json(L) ->
	error({badarg, {content_handlers, L}}).

sse_opts(Opts) ->
	{obj, [case {K, V} of
		{max_event_size, N} when is_integer(N) -> {<<"max_event_size">>, N};
		_ -> error({badarg, {content_handlers, {K, V}}})
	end || {K, V} <- lists:sort(maps:to_list(Opts))]}.

%% Gun's reply_to: a pid, or a fun / {Fun, Args} / {M, F, A} that Gun calls
%% with each message. Funs are called by ConnPid, which gets the stream's
%% messages for that purpose.
reply_to(ServerPid, ReqOpts) ->
	case maps:get(reply_to, ReqOpts, self()) of
		Pid when is_pid(Pid) -> {Pid, undefined};
		Fun when is_function(Fun, 1), is_pid(ServerPid) -> {ServerPid, Fun};
		{Fun, A} = R when is_function(Fun), is_list(A), is_pid(ServerPid) -> {ServerPid, R};
		{M, F, A} = R when is_atom(M), is_atom(F), is_list(A), is_pid(ServerPid) -> {ServerPid, R};
		_ -> error(badarg)
	end.

%% Where a chain's messages go: Gun's ReplyTo, a pid or a reply_to fun.
reply_target(Pid, undefined) -> Pid;
reply_target(_, Fun) -> Fun.

register_reply_fun(_, _, undefined) -> ok;
register_reply_fun(ServerPid, StreamRef, Fun) ->
	ServerPid ! {'$gunmetal_reply_fun', StreamRef, Fun},
	ok.

%% What Gun does when its connection process is gone: the cast is lost and
%% the caller gets a reference that no message will ever carry (await/2
%% then answers {error, {down, noproc}}, as the monitor fires).
request_failed(ServerPid, ReplyTo, Res) ->
	request_failed(ServerPid, ReplyTo, Res, undefined).

request_failed(_, _, noconn, Tunnel) -> make_stream_ref(Tunnel);
request_failed(_, _, {error, closed, _}, Tunnel) -> make_stream_ref(Tunnel);
request_failed(_, _, {error, einval, Msg}, _) -> error({badarg, Msg});
request_failed(_, _, {error, options, Msg}, _) -> error({badarg, Msg}); % req_opts content_handlers
%% The tunnel named is no stream of ours (or is over), or a stream that is
%% not a tunnel (not up yet): Gun's gun_http2 messages for those.
request_failed(ServerPid, ReplyTo, nostream, Tunnel) ->
	StreamRef = make_stream_ref(Tunnel),
	ReplyTo ! {gun_error, ServerPid, StreamRef, {badstate, "The stream cannot be found."}},
	StreamRef;
request_failed(ServerPid, ReplyTo, not_a_tunnel, Tunnel) ->
	StreamRef = make_stream_ref(Tunnel),
	ReplyTo ! {gun_error, ServerPid, StreamRef, {badstate, "The stream is not a tunnel."}},
	StreamRef;
request_failed(ServerPid, ReplyTo, {error, Code, Msg}, Tunnel) ->
	StreamRef = make_stream_ref(Tunnel),
	ReplyTo ! {gun_error, ServerPid, StreamRef, {Code, Msg}},
	StreamRef.

%% Tunnels.

%% Gun's gun:connect: a CONNECT through the proxy the connection speaks
%% to. The proxy's answer comes as gun_response on StreamRef; a 2xx (fin)
%% is followed by {gun_tunnel_up, ConnPid, StreamRef, Protocol} ({up,
%% Protocol} from await/2). Another status is an ordinary response.
%% Through an HTTP/1.1 proxy the connection becomes the origin's (requests
%% need no tunnel option; naming StreamRef works too, as in Gun). Through
%% an HTTP/2 proxy the tunnel is one stream: requests, ws_upgrade and
%% further CONNECTs name it with tunnel => StreamRef and get Gun's
%% [StreamRef, Ref] stream refs; raw tunnels send and receive on
%% StreamRef itself. ReqOpts: reply_to (a pid), flow and tunnel.
-spec connect(pid(), map()) -> stream_ref().
connect(ServerPid, Destination) ->
	connect(ServerPid, Destination, [], #{}).

-spec connect(pid(), map(), req_headers()) -> stream_ref().
connect(ServerPid, Destination, Headers) ->
	connect(ServerPid, Destination, Headers, #{}).

-spec connect(pid(), map(), req_headers(), map()) -> stream_ref().
connect(ServerPid, Destination, Headers, ReqOpts) when is_map(Destination), is_map(ReqOpts) ->
	_ = [error({badarg, {K, not_supported}}) || K <- maps:keys(ReqOpts), K =/= reply_to, K =/= flow,
		K =/= tunnel],
	Tunnel = get_tunnel(ReqOpts),
	Flow = case maps:get(flow, ReqOpts, infinity) of
		infinity -> 0;
		F when is_integer(F), F > 0, F < 16#80000000 -> F;
		_ -> error(badarg)
	end,
	ReplyTo = case maps:get(reply_to, ReqOpts, self()) of
		Pid when is_pid(Pid) -> Pid;
		_ -> error({badarg, {reply_to, not_a_pid}})
	end,
	Json = gunmetal_opts:destination_to_json(Destination),
	%% Where the CONNECT goes through, for stream_info/2's intermediaries.
	Via = tunnel_via(ServerPid, Tunnel),
	case gunmetal_nif:connect(ServerPid, Json, Headers, ReplyTo, Flow, Tunnel) of
		StreamRef when is_reference(StreamRef); is_list(StreamRef) ->
			ServerPid ! {'$gunmetal_tunnel', last_ref(StreamRef), #{via => Via,
				dest => {maps:get(host, Destination), maps:get(port, Destination),
					maps:get(transport, Destination, tcp)}}},
			StreamRef;
		{error, unsupported} -> request_failed(ServerPid, ReplyTo,
			{error, unsupported, <<"gm_connect is not in the loaded libgunmetal">>}, Tunnel);
		Other -> request_failed(ServerPid, ReplyTo, Other, Tunnel)
	end;
connect(_, _, _, _) ->
	error(badarg).

last_ref(L) when is_list(L) -> lists:last(L);
last_ref(R) -> R.

%% The hop a CONNECT goes through (Gun's intermediary map): the endpoint
%% the connection speaks to, or, inside a tunnel, that tunnel's
%% destination with the protocol its gun_tunnel_up reported.
tunnel_via(ServerPid, undefined) ->
	try info(ServerPid) of
		#{origin_host := H, origin_port := P, transport := T} = I ->
			#{type => connect, host => H, port => P, transport => T,
				protocol => maps:get(protocol, I, http)}
	catch exit:_ ->
		undefined
	end;
tunnel_via(ServerPid, Tunnel) ->
	Last = lists:last(Tunnel),
	case conn_tunnels(ServerPid) of
		#{Last := #{dest := {H, P, T}}} ->
			Proto = case gunmetal_nif:tunnel_protocol(Last) of
				undefined -> http;
				Pr -> Pr
			end,
			#{type => case Proto of socks -> socks5; _ -> connect end,
				host => H, port => P, transport => T, protocol => Proto};
		_ ->
			undefined
	end.

%% What ConnPid noted of the CONNECTs made (see connect/4).
conn_tunnels(ServerPid) ->
	MRef = monitor(process, ServerPid),
	ServerPid ! {'$gunmetal_tunnels', self(), MRef},
	receive
		{MRef, Tunnels} ->
			demonitor(MRef, [flush]),
			Tunnels;
		{'DOWN', MRef, process, ServerPid, _} ->
			#{}
	end.

%% Streaming data.

-spec data(pid(), stream_ref(), fin | nofin, iodata()) -> ok.
data(ServerPid, StreamRef, IsFin, Data) ->
	%% iolist_size/1 yields, and checks Data: the NIF walks it on a dirty
	%% scheduler without flattening it.
	case iolist_size(Data) of
		0 when IsFin =:= nofin ->
			ok;
		_ ->
			case gunmetal_nif:data(ServerPid, StreamRef, IsFin, Data, false) of
				ok -> ok;
				queue ->
					ServerPid ! {'$gunmetal_data', StreamRef, IsFin, Data},
					ok;
				noconn -> ok;
				%% Raw's tcp_opts send_timeout: gen_tcp's {timeout, RestData},
				%% the bytes that did not go out (the sentence says whether
				%% the connection closes: send_timeout_close).
				{error, timeout, Sent, _Msg} ->
					Bin = iolist_to_binary(Data),
					self() ! {gun_error, ServerPid, StreamRef,
						{timeout, binary:part(Bin, Sent, byte_size(Bin) - Sent)}},
					ok;
				{error, closed, _} -> ok;
				{error, einval, Msg} -> error({badarg, Msg});
				%% Gun's gun_http/gun_http2 error_stream_not_found and
				%% error_stream_closed, sent to the caller.
				nostream ->
					self() ! {gun_error, ServerPid, StreamRef, {badstate, "The stream cannot be found."}},
					ok;
				stream_closed ->
					self() ! {gun_error, ServerPid, StreamRef, {badstate, "The stream has already been closed."}},
					ok;
				{error, Code, Msg} ->
					self() ! {gun_error, ServerPid, StreamRef, {Code, Msg}},
					ok
			end
	end.

%% User pings.

-spec ping(pid()) -> reference() | {error, unsupported}.
ping(ServerPid) ->
	ping(ServerPid, #{}).

-spec ping(pid(), map()) -> reference() | {error, unsupported}.
ping(ServerPid, ReqOpts) when is_map(ReqOpts) ->
	Tunnel = get_tunnel(ReqOpts), % the HTTP/2 server at the tunnel's end; the ref stays plain, as Gun's
	{ReplyPid, ReplyFun} = reply_to(ServerPid, ReqOpts),
	case gunmetal_nif:ping(ServerPid, ReplyPid, Tunnel) of
		PingRef when is_reference(PingRef) ->
			register_reply_fun(ServerPid, PingRef, ReplyFun),
			PingRef;
		{error, unsupported} = E -> E;
		Other -> request_failed(ServerPid, ReplyPid, Other)
	end.

%% Awaiting gun messages (Gun's own code: selective receive on the
%% caller's mailbox, a monitor on the connection process).

-spec await(pid(), stream_ref()) -> tuple().
await(ServerPid, StreamRef) ->
	MRef = monitor(process, ServerPid),
	Res = await(ServerPid, StreamRef, 5000, MRef),
	demonitor(MRef, [flush]),
	Res.

-spec await(pid(), stream_ref(), timeout() | reference()) -> tuple().
await(ServerPid, StreamRef, MRef) when is_reference(MRef) ->
	await(ServerPid, StreamRef, 5000, MRef);
await(ServerPid, StreamRef, Timeout) ->
	MRef = monitor(process, ServerPid),
	Res = await(ServerPid, StreamRef, Timeout, MRef),
	demonitor(MRef, [flush]),
	Res.

-spec await(pid(), stream_ref(), timeout(), reference()) -> tuple().
await(ServerPid, StreamRef, Timeout, MRef) ->
	receive
		{gun_inform, ServerPid, StreamRef, Status, Headers} ->
			{inform, Status, Headers};
		{gun_response, ServerPid, StreamRef, IsFin, Status, Headers} ->
			{response, IsFin, Status, Headers};
		{gun_data, ServerPid, StreamRef, IsFin, Data} ->
			{data, IsFin, Data};
		{gun_trailers, ServerPid, StreamRef, Trailers} ->
			{trailers, Trailers};
		{gun_push, ServerPid, StreamRef, NewStreamRef, Method, URI, Headers} ->
			{push, NewStreamRef, Method, URI, Headers};
		{gun_upgrade, ServerPid, StreamRef, Protocols, Headers} ->
			{upgrade, Protocols, Headers};
		{gun_ws, ServerPid, StreamRef, Frame} ->
			{ws, Frame};
		{gun_tunnel_up, ServerPid, StreamRef, Protocol} ->
			{up, Protocol};
		{gun_notify, ServerPid, Type, Info} ->
			{notify, Type, Info};
		{gun_error, ServerPid, StreamRef, Reason} ->
			{error, {stream_error, Reason}};
		{gun_error, ServerPid, Reason} ->
			{error, {connection_error, Reason}};
		{'DOWN', MRef, process, ServerPid, Reason} ->
			{error, {down, down_reason(ServerPid, Reason)}}
	after Timeout ->
		{error, timeout}
	end.

-spec await_body(pid(), stream_ref()) -> tuple().
await_body(ServerPid, StreamRef) ->
	MRef = monitor(process, ServerPid),
	Res = await_body(ServerPid, StreamRef, 5000, MRef, <<>>),
	demonitor(MRef, [flush]),
	Res.

-spec await_body(pid(), stream_ref(), timeout() | reference()) -> tuple().
await_body(ServerPid, StreamRef, MRef) when is_reference(MRef) ->
	await_body(ServerPid, StreamRef, 5000, MRef, <<>>);
await_body(ServerPid, StreamRef, Timeout) ->
	MRef = monitor(process, ServerPid),
	Res = await_body(ServerPid, StreamRef, Timeout, MRef, <<>>),
	demonitor(MRef, [flush]),
	Res.

-spec await_body(pid(), stream_ref(), timeout(), reference()) -> tuple().
await_body(ServerPid, StreamRef, Timeout, MRef) ->
	await_body(ServerPid, StreamRef, Timeout, MRef, <<>>).

await_body(ServerPid, StreamRef, Timeout, MRef, Acc) ->
	receive
		{gun_data, ServerPid, StreamRef, nofin, Data} ->
			await_body(ServerPid, StreamRef, Timeout, MRef,
				<< Acc/binary, Data/binary >>);
		{gun_data, ServerPid, StreamRef, fin, Data} ->
			{ok, << Acc/binary, Data/binary >>};
		{gun_trailers, ServerPid, StreamRef, Trailers} ->
			{ok, Acc, Trailers};
		{gun_error, ServerPid, StreamRef, Reason} ->
			{error, {stream_error, Reason}};
		{gun_error, ServerPid, Reason} ->
			{error, {connection_error, Reason}};
		{'DOWN', MRef, process, ServerPid, Reason} ->
			{error, {down, down_reason(ServerPid, Reason)}}
	after Timeout ->
		{error, timeout}
	end.

-spec await_up(pid()) -> {ok, atom()} | {error, {down, any()} | timeout}.
await_up(ServerPid) ->
	MRef = monitor(process, ServerPid),
	Res = await_up(ServerPid, 5000, MRef),
	demonitor(MRef, [flush]),
	Res.

-spec await_up(pid(), reference() | timeout()) -> {ok, atom()} | {error, {down, any()} | timeout}.
await_up(ServerPid, MRef) when is_reference(MRef) ->
	await_up(ServerPid, 5000, MRef);
await_up(ServerPid, Timeout) ->
	MRef = monitor(process, ServerPid),
	Res = await_up(ServerPid, Timeout, MRef),
	demonitor(MRef, [flush]),
	Res.

-spec await_up(pid(), timeout(), reference()) -> {ok, atom()} | {error, {down, any()} | timeout}.
await_up(ServerPid, Timeout, MRef) ->
	receive
		{gun_up, ServerPid, Protocol} ->
			{ok, Protocol};
		{'DOWN', MRef, process, ServerPid, Reason} ->
			{error, {down, down_reason(ServerPid, Reason)}}
	after Timeout ->
		{error, timeout}
	end.

%% A monitor set after ConnPid exited says noproc; Gun's process, slower to
%% fail, is nearly always still there. ConnPid noted its reason as it
%% exited (a bounded ring in the NIF): that is what Gun's 'DOWN' says.
down_reason(ServerPid, noproc) ->
	case gunmetal_nif:exit_reason(ServerPid) of
		{ok, Reason} -> Reason;
		error -> noproc
	end;
down_reason(_, Reason) ->
	Reason.

-spec flush(pid() | stream_ref()) -> ok.
flush(ServerPid) when is_pid(ServerPid) ->
	flush_pid(ServerPid);
flush(StreamRef) ->
	flush_ref(StreamRef).

flush_pid(ServerPid) ->
	receive
		{gun_up, ServerPid, _} -> flush_pid(ServerPid);
		{gun_down, ServerPid, _, _, _} -> flush_pid(ServerPid);
		{gun_inform, ServerPid, _, _, _} -> flush_pid(ServerPid);
		{gun_response, ServerPid, _, _, _, _} -> flush_pid(ServerPid);
		{gun_data, ServerPid, _, _, _} -> flush_pid(ServerPid);
		{gun_trailers, ServerPid, _, _} -> flush_pid(ServerPid);
		{gun_push, ServerPid, _, _, _, _, _, _} -> flush_pid(ServerPid);
		{gun_error, ServerPid, _, _} -> flush_pid(ServerPid);
		{gun_error, ServerPid, _} -> flush_pid(ServerPid);
		{gun_tunnel_up, ServerPid, _, _} -> flush_pid(ServerPid);
		{gun_upgrade, ServerPid, _, _, _} -> flush_pid(ServerPid);
		{gun_ws, ServerPid, _, _} -> flush_pid(ServerPid);
		{'DOWN', _, process, ServerPid, _} -> flush_pid(ServerPid)
	after 0 ->
		ok
	end.

flush_ref(StreamRef) ->
	receive
		{gun_inform, _, StreamRef, _, _} -> flush_ref(StreamRef);
		{gun_response, _, StreamRef, _, _, _} -> flush_ref(StreamRef);
		{gun_data, _, StreamRef, _, _} -> flush_ref(StreamRef);
		{gun_trailers, _, StreamRef, _} -> flush_ref(StreamRef);
		{gun_push, _, StreamRef, _, _, _, _, _} -> flush_ref(StreamRef);
		{gun_error, _, StreamRef, _} -> flush_ref(StreamRef);
		{gun_tunnel_up, _, StreamRef, _} -> flush_ref(StreamRef);
		{gun_upgrade, _, StreamRef, _, _} -> flush_ref(StreamRef);
		{gun_ws, _, StreamRef, _} -> flush_ref(StreamRef)
	after 0 ->
		ok
	end.

%% Streams.

-spec update_flow(pid(), stream_ref(), pos_integer()) -> ok.
update_flow(ServerPid, StreamRef, Flow) ->
	gunmetal_nif:update_flow(ServerPid, StreamRef, Flow).

-spec cancel(pid(), stream_ref()) -> ok.
cancel(ServerPid, StreamRef) ->
	case gunmetal_nif:cancel(ServerPid, StreamRef) of
		nostream ->
			%% Unknown, finished or already cancelled: Gun's error_stream_not_found.
			self() ! {gun_error, ServerPid, StreamRef, {badstate, "The stream cannot be found."}},
			ok;
		ok ->
			ok
	end.

-spec stream_info(pid(), stream_ref()) -> {ok, map() | undefined} | {error, not_connected}.
stream_info(ServerPid, StreamRef) ->
	case do_stream_info(ServerPid, StreamRef) of
		{ok, #{}} = Found ->
			Found;
		Other ->
			%% Gun's gen_statem:call exits noproc once the process is gone;
			%% the NIF may not have seen the death yet.
			_ = is_process_alive(ServerPid) orelse
				exit({noproc, {?MODULE, stream_info, [ServerPid, StreamRef]}}),
			Other
	end.

do_stream_info(ServerPid, StreamRef) ->
	case gunmetal_nif:stream_info(ServerPid, StreamRef) of
		{ok, KV0, ReplyTo} ->
			KV = maps:from_list(KV0),
			case maps:get(<<"state">>, KV, <<"running">>) of
				<<"queued">> ->
					{error, not_connected};
				State ->
					{ok, tunnel_stream_info(ServerPid, StreamRef, KV, #{ref => StreamRef,
						reply_to => ReplyTo, state => binary_to_atom(State)})}
			end;
		nostream ->
			case gunmetal_nif:info(ServerPid) of
				{ok, L} ->
					case proplists:get_value(<<"state">>, L) of
						S when S =:= <<"connected">>; S =:= <<"closing">> -> {ok, undefined};
						_ -> {error, not_connected}
					end;
				noconn ->
					exit({noproc, {?MODULE, stream_info, [ServerPid, StreamRef]}});
				_ ->
					{ok, undefined}
			end;
		noconn ->
			exit({noproc, {?MODULE, stream_info, [ServerPid, StreamRef]}});
		{error, _, _} ->
			{ok, undefined}
	end.

%% Gun's stream_info keys for tunnels: a CONNECT stream whose HTTP/2
%% tunnel is up has tunnel => #{transport, protocol, origin_scheme,
%% origin_host, origin_port} (its destination, as given to connect/4, and
%% the protocol its gun_tunnel_up reported); a stream inside tunnels has
%% intermediaries, the hops its tunnels go through, outermost first.
tunnel_stream_info(ServerPid, StreamRef, KV, Info0) ->
	HasTunnel = is_map_key(<<"tunnel_protocol">>, KV),
	Tunnels = case HasTunnel orelse is_list(StreamRef) of
		true -> conn_tunnels(ServerPid);
		false -> #{}
	end,
	Info1 = case HasTunnel of
		false -> Info0;
		true ->
			#{<<"tunnel_transport">> := T0, <<"tunnel_protocol">> := P0,
				<<"tunnel_origin_host">> := H0, <<"tunnel_origin_port">> := Port0} = KV,
			Last = last_ref(StreamRef),
			{H, Port, T} = case Tunnels of
				#{Last := #{dest := Dest}} -> Dest;
				_ -> {binary_to_list(H0), binary_to_integer(Port0), binary_to_atom(T0)}
			end,
			P = case gunmetal_nif:tunnel_protocol(Last) of
				undefined -> binary_to_atom(P0);
				P1 -> P1
			end,
			Info0#{tunnel => #{transport => T, protocol => P,
				origin_scheme => case {T, P} of
					{_, raw} -> undefined;
					{tls, _} -> <<"https">>;
					_ -> <<"http">>
				end,
				origin_host => H, origin_port => Port}}
	end,
	case StreamRef of
		[_|_] ->
			Info1#{intermediaries => [V || R <- lists:droplast(StreamRef),
				#{via := V} <- [maps:get(R, Tunnels, #{})], V =/= undefined]};
		_ ->
			Info1
	end.

%% Websocket.

-spec ws_upgrade(pid(), iodata()) -> stream_ref() | {error, unsupported}.
ws_upgrade(ServerPid, Path) ->
	ws_upgrade(ServerPid, Path, []).

-spec ws_upgrade(pid(), iodata(), req_headers()) -> stream_ref() | {error, unsupported}.
ws_upgrade(ServerPid, Path, Headers) ->
	do_ws_upgrade(ServerPid, Path, Headers, <<>>, #{}, undefined).

-spec ws_upgrade(pid(), iodata(), req_headers(), map()) -> stream_ref() | {error, unsupported}.
ws_upgrade(ServerPid, Path, Headers, Opts) when is_map(Opts) ->
	%% Gun's: the upgrade goes through the tunnel, and the other options
	%% replace the connection's ws_opts.
	Tunnel = get_tunnel(Opts),
	{ok, Json} = gunmetal_opts:ws_to_json(Opts),
	do_ws_upgrade(ServerPid, Path, Headers, iolist_to_binary(Json), Opts, Tunnel).

do_ws_upgrade(ServerPid, Path, Headers, Json, Opts, Tunnel) ->
	{ReplyPid, ReplyFun} = reply_to(ServerPid, Opts),
	case gunmetal_nif:ws_upgrade(ServerPid, Path, Headers, Json, ReplyPid, Tunnel) of
		StreamRef when is_reference(StreamRef); is_list(StreamRef) ->
			register_reply_fun(ServerPid, StreamRef, ReplyFun),
			StreamRef;
		{error, unsupported} = E -> E;
		{error, options, Msg} -> error({badarg, {options, Msg}});
		Other -> request_failed(ServerPid, ReplyPid, Other, Tunnel)
	end.

-spec ws_send(pid(), stream_ref(), ws_frame() | [ws_frame()]) -> ok | {error, unsupported}.
ws_send(ServerPid, StreamRef, Frames) when is_list(Frames) ->
	case gunmetal_nif:ws_send(ServerPid, StreamRef, [ws_frame(F) || F <- Frames]) of
		ok -> ok;
		noconn -> ok;
		{error, unsupported} = E -> E;
		{error, closed, _} -> ok;
		{error, einval, Msg} -> error({badarg, Msg});
		{error, Code, Msg} ->
			self() ! {gun_error, ServerPid, StreamRef, {Code, Msg}},
			ok
	end;
ws_send(ServerPid, StreamRef, Frame) ->
	ws_send(ServerPid, StreamRef, [Frame]).

%% {Opcode, CloseCode, Payload} for the NIF.
ws_frame(close) -> {8, 0, <<>>};
ws_frame(ping) -> {9, 0, <<>>};
ws_frame(pong) -> {10, 0, <<>>};
ws_frame({text, D}) -> {1, 0, D};
ws_frame({binary, D}) -> {2, 0, D};
ws_frame({close, D}) -> {8, 1000, D};
ws_frame({ping, D}) -> {9, 0, D};
ws_frame({pong, D}) -> {10, 0, D};
ws_frame({close, Code, D}) when is_integer(Code), Code >= 1000, Code =< 4999 -> {8, Code, D};
ws_frame(_) -> error(badarg).

%% gunmetal's own.

%% What the loaded library supports beyond HTTP: ws, ping.
-spec features() -> [atom()].
features() ->
	gunmetal_nif:features().

-spec version() -> binary().
version() ->
	gunmetal_nif:version().

%% Cookies (gunmetal's extension: Gun's store is a module the user gives;
%% gunmetal's lives in the engine). Each cookie is a map with gun_cookies'
%% keys: name, value, domain, path (binaries), host_only, secure_only,
%% http_only, persistent (booleans), same_site (default | none | strict |
%% lax) and expiry_time (a UTC calendar:datetime() or infinity). Gun's
%% creation_time and last_access_time are not kept by the engine.
-spec cookies(pid()) -> {ok, [map()]} | {error, any()}.
cookies(ServerPid) when is_pid(ServerPid) ->
	case gunmetal_nif:cookies_get(ServerPid) of
		{ok, Json} -> {ok, [cookie_from_json(C) || C <- json_decode(Json)]};
		noconn -> {error, not_connected};
		{error, Code, Msg} -> {error, {Code, Msg}}
	end.

%% Seeds the store with cookies of cookies/1's shape (name, value and domain
%% are required); the engine's rules apply as for Set-Cookie. An
%% expiry_time in the past removes the cookie.
-spec set_cookies(pid(), [map()]) -> ok | {error, any()}.
set_cookies(ServerPid, Cookies) when is_pid(ServerPid), is_list(Cookies) ->
	Json = iolist_to_binary(gunmetal_opts:encode({arr, [cookie_to_json(C) || C <- Cookies]})),
	case gunmetal_nif:cookies_set(ServerPid, Json) of
		ok -> ok;
		noconn -> {error, not_connected};
		{error, einval, Msg} -> {error, {badarg, Msg}};
		{error, Code, Msg} -> {error, {Code, Msg}}
	end.

cookie_from_json(M) ->
	Expiry = case M of
		#{<<"expiry_time">> := T} ->
			calendar:system_time_to_universal_time(
				calendar:rfc3339_to_system_time(binary_to_list(T)), second);
		_ -> infinity
	end,
	#{name => maps:get(<<"name">>, M), value => maps:get(<<"value">>, M),
		domain => maps:get(<<"domain">>, M), path => maps:get(<<"path">>, M, <<"/">>),
		host_only => maps:get(<<"host_only">>, M, false),
		secure_only => maps:get(<<"secure_only">>, M, false),
		http_only => maps:get(<<"http_only">>, M, false),
		same_site => case M of
			#{<<"same_site">> := SS} when SS =:= <<"strict">>; SS =:= <<"lax">>; SS =:= <<"none">> ->
				binary_to_atom(SS);
			_ -> default
		end,
		expiry_time => Expiry, persistent => Expiry =/= infinity}.

%% Gun's keys the engine keeps; persistent follows from expiry_time and
%% Gun's creation_time and last_access_time are ignored. Other keys, or bad
%% values, are badarg naming them.
cookie_to_json(C) when is_map(C) ->
	{obj, lists:filtermap(fun
		({K, V}) when (K =:= name orelse K =:= value orelse K =:= domain orelse K =:= path) ->
			case unicode:characters_to_binary(V) of
				B when is_binary(B) -> {true, {atom_to_binary(K), B}};
				_ -> error({badarg, {cookie, K, V}})
			end;
		({K, V}) when (K =:= host_only orelse K =:= secure_only orelse K =:= http_only), is_boolean(V) ->
			{true, {atom_to_binary(K), V}};
		({same_site, default}) -> false;
		({same_site, V}) when V =:= none; V =:= strict; V =:= lax -> {true, {<<"same_site">>, atom_to_binary(V)}};
		({expiry_time, infinity}) -> false;
		({expiry_time, {{_, _, _}, {_, _, _}} = DT}) ->
			Secs = calendar:datetime_to_gregorian_seconds(DT) - 62167219200,
			{true, {<<"expiry_time">>, list_to_binary(
				calendar:system_time_to_rfc3339(Secs, [{offset, "Z"}, {unit, second}]))}};
		({K, _}) when K =:= persistent; K =:= creation_time; K =:= last_access_time -> false;
		({K, V}) -> error({badarg, {cookie, K, V}})
	end, lists:sort(maps:to_list(C)))};
cookie_to_json(C) ->
	error({badarg, {cookie, C}}).

%% A small JSON decoder for the engine's own output (OTP 25 has no json).
json_decode(Bin) ->
	{V, Rest} = json_value(json_ws(Bin)),
	<<>> = json_ws(Rest),
	V.

json_ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> json_ws(R);
json_ws(B) -> B.

json_value(<<"[", R/binary>>) -> json_arr(json_ws(R), []);
json_value(<<"{", R/binary>>) -> json_obj(json_ws(R), #{});
json_value(<<"\"", R/binary>>) -> json_str(R, <<>>);
json_value(<<"true", R/binary>>) -> {true, R};
json_value(<<"false", R/binary>>) -> {false, R};
json_value(<<"null", R/binary>>) -> {null, R};
json_value(B) ->
	{match, [N]} = re:run(B, "^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?", [{capture, first, binary}]),
	<<_:(byte_size(N))/binary, R/binary>> = B,
	{try binary_to_integer(N) catch error:badarg -> binary_to_float(N) end, R}.

json_arr(<<"]", R/binary>>, []) -> {[], R};
json_arr(B, Acc) ->
	{V, R0} = json_value(B),
	case json_ws(R0) of
		<<",", R/binary>> -> json_arr(json_ws(R), [V|Acc]);
		<<"]", R/binary>> -> {lists:reverse([V|Acc]), R}
	end.

json_obj(<<"}", R/binary>>, Acc) when map_size(Acc) =:= 0 -> {Acc, R};
json_obj(<<"\"", B/binary>>, Acc) ->
	{K, R0} = json_str(B, <<>>),
	<<":", R1/binary>> = json_ws(R0),
	{V, R2} = json_value(json_ws(R1)),
	case json_ws(R2) of
		<<",", R/binary>> -> json_obj(json_ws(R), Acc#{K => V});
		<<"}", R/binary>> -> {Acc#{K => V}, R}
	end.

json_str(<<"\"", R/binary>>, Acc) -> {Acc, R};
json_str(<<"\\u", H:4/binary, R/binary>>, Acc) ->
	C0 = binary_to_integer(H, 16),
	case {C0 >= 16#D800 andalso C0 =< 16#DBFF, R} of
		{true, <<"\\u", L:4/binary, R1/binary>>} ->
			C = 16#10000 + ((C0 - 16#D800) bsl 10) + (binary_to_integer(L, 16) - 16#DC00),
			json_str(R1, <<Acc/binary, C/utf8>>);
		_ ->
			json_str(R, <<Acc/binary, C0/utf8>>)
	end;
json_str(<<"\\", E, R/binary>>, Acc) ->
	C = case E of $b -> $\b; $f -> $\f; $n -> $\n; $r -> $\r; $t -> $\t; _ -> E end,
	json_str(R, <<Acc/binary, C>>);
json_str(<<C, R/binary>>, Acc) ->
	json_str(R, <<Acc/binary, C>>).

%% The connection process. It holds no socket: it stands for the connection
%% (monitors, links, exit reasons), watches the owner, keeps body pieces
%% sent before the connection was up, sends request bodies over DIRTY_BODY,
%% and calls reply_to funs.

-record(cp, {
	owner :: pid(),
	mref :: reference() | undefined,
	static :: map(),
	pending = [] :: [{reference(), fin | nofin, iodata()}],
	funs = #{} :: #{stream_ref() => any()},
	%% The CONNECTs made (connect/4): destination and the hop each went
	%% through, for stream_info/2; the oldest go past ?MAX_TUNNELS.
	tunnels = #{} :: #{reference() => map()},
	tunnel_order = queue:new() :: queue:queue(reference()),
	ev = undefined :: {module(), any()} | undefined
}).

conn_init(Owner, Static, _Opener) ->
	MRef = monitor(process, Owner),
	%% For chain/2 (the connection's content handler chains).
	put('$gunmetal_static', Static),
	conn_loop(#cp{owner=Owner, mref=MRef, static=Static,
		ev=maps:get(event_handler, Static, undefined)}).

conn_loop(S=#cp{owner=Owner, mref=MRef, pending=Pending}) ->
	Timeout = case Pending of [] -> infinity; _ -> 5 end,
	receive
		{'$gunmetal_exit', Reason} ->
			conn_exit(exit_reason(Reason, S));
		{'DOWN', MRef, process, Owner, Reason} ->
			%% The NIF's owner is the truth: set_owner changes it before it
			%% tells us, and its caller may die before it does.
			case gunmetal_nif:owner(self()) of
				New when is_pid(New), New =/= Owner ->
					conn_loop(follow_owner(New, S#cp{mref=undefined}));
				_ ->
					_ = gunmetal_nif:close(self()),
					conn_exit(owner_down(Reason))
			end;
		'$gunmetal_owner' ->
			case gunmetal_nif:owner(self()) of
				New when is_pid(New) -> conn_loop(follow_owner(New, S));
				_ -> conn_loop(S)
			end;
		{'$gunmetal_data', StreamRef, IsFin, Data} ->
			conn_loop(S#cp{pending=send_pending(Pending ++ [{StreamRef, IsFin, Data}])});
		{'$gunmetal_info', From, Tag} ->
			Current = case gunmetal_nif:owner(self()) of
				P when is_pid(P) -> P;
				_ -> Owner
			end,
			EvState = case S#cp.ev of {_, EvSt} -> EvSt; _ -> undefined end,
			From ! {Tag, (S#cp.static)#{owner => Current, event_handler_state => EvState}},
			conn_loop(S);
		{'$gunmetal_trace', Name, StreamRef, ReplyTo, _TsNs, Status, Details, Headers, Data}
				when is_atom(Name) ->
			conn_loop(run_event_handler(Name, StreamRef, ReplyTo, Status, Details, Headers, Data, S));
		{'$gunmetal_reply_fun', StreamRef, Fun} ->
			conn_loop(S#cp{funs=(S#cp.funs)#{StreamRef => Fun}});
		{'$gunmetal_tunnel', Ref, TInfo} ->
			conn_loop(note_tunnel(Ref, TInfo, S));
		{'$gunmetal_tunnels', From, Tag} ->
			From ! {Tag, S#cp.tunnels},
			conn_loop(S);
		Msg when is_tuple(Msg), tuple_size(Msg) >= 3 ->
			conn_loop(reply_fun(Msg, S));
		_ ->
			conn_loop(S)
	after Timeout ->
		conn_loop(S#cp{pending=send_pending(Pending)})
	end.

note_tunnel(Ref, TInfo, S=#cp{tunnels=Ts, tunnel_order=Q0}) ->
	Q = queue:in(Ref, Q0),
	case queue:len(Q) > ?MAX_TUNNELS of
		true ->
			{{value, Old}, Q1} = queue:out(Q),
			S#cp{tunnels=maps:remove(Old, Ts#{Ref => TInfo}), tunnel_order=Q1};
		false ->
			S#cp{tunnels=Ts#{Ref => TInfo}, tunnel_order=Q}
	end.

%% Monitors the owner the NIF has (a dead one answers 'DOWN' noproc at once,
%% and we exit {shutdown, {owner_down, noproc}}, as Gun does).
follow_owner(Owner, S=#cp{owner=Owner, mref=MRef}) when MRef =/= undefined ->
	S;
follow_owner(New, S=#cp{mref=MRef}) ->
	_ = MRef =/= undefined andalso demonitor(MRef, [flush]),
	S#cp{owner=New, mref=monitor(process, New)}.

%% Notes the reason for await* callers that monitor us too late.
conn_exit(Reason) ->
	_ = gunmetal_nif:exit_note(Reason),
	exit(Reason).

exit_reason(owner_down, #cp{owner=Owner, mref=MRef}) ->
	receive
		{'DOWN', MRef, process, Owner, Reason} -> owner_down(Reason)
	after 1000 ->
		{shutdown, owner_down}
	end;
exit_reason(Reason, _) ->
	Reason.

%% Gun's owner_down/2.
owner_down(normal) -> normal;
owner_down(shutdown) -> shutdown;
owner_down(Shutdown = {shutdown, _}) -> Shutdown;
owner_down(Reason) -> {shutdown, {owner_down, Reason}}.

send_pending([]) ->
	[];
send_pending(All = [{StreamRef, IsFin, Data}|Tail]) ->
	case gunmetal_nif:data(self(), StreamRef, IsFin, Data, true) of
		retry -> All;
		noconn ->
			_ = [gunmetal_nif:data_dropped(R) || {R, _, _} <- All],
			[];
		_ -> send_pending(Tail)
	end.

%% A message for a stream whose reply_to is a fun.
reply_fun(Msg, S=#cp{funs=Funs}) ->
	case is_gun_message(element(1, Msg)) of
		false ->
			S;
		true ->
			StreamRef = stream_of(Msg),
			Fun = case Funs of
				#{StreamRef := F} -> F;
				_ ->
					%% The caller registers the fun right after the NIF
					%% call returned; the first message may be quicker.
					receive {'$gunmetal_reply_fun', StreamRef, F} -> F
					after 1000 -> undefined
					end
			end,
			Fun1 = case Fun of
				{'$chain', _, _} -> chain(Msg, Fun);
				undefined -> undefined;
				_ -> _ = (catch call_reply(Fun, Msg)), Fun
			end,
			Funs0 = case {Msg, Fun} of
				%% A stream pushed on a chain's stream: its messages come
				%% here too, and pass on as they are (not through the chain).
				{{gun_push, _, _, NewRef, _, _, _}, {'$chain', PushTo, _}} ->
					Funs#{NewRef => {'$chain', PushTo, none}};
				_ -> Funs
			end,
			Funs1 = case ends_stream(Msg) of
				true -> maps:remove(StreamRef, Funs0);
				false when Fun1 =/= undefined -> Funs0#{StreamRef => Fun1};
				false -> Funs0
			end,
			S#cp{funs=Funs1}
	end.

is_gun_message(T) ->
	lists:member(T, [gun_inform, gun_response, gun_data, gun_trailers, gun_push, gun_error,
		gun_upgrade, gun_ws, gun_notify, gun_tunnel_up]).

stream_of({gun_notify, _, ping_ack, Ref}) -> Ref;
stream_of(Msg) -> element(3, Msg).

ends_stream({gun_response, _, _, fin, _, _}) -> true;
ends_stream({gun_data, _, _, fin, _}) -> true;
ends_stream({gun_trailers, _, _, _}) -> true;
ends_stream({gun_error, _, _, _}) -> true;
ends_stream({gun_notify, _, ping_ack, _}) -> true;
ends_stream(_) -> false.

%% A stream whose content_handlers has a module of the user's own: Gun's
%% gun_content_handler run here, in ConnPid (self() in a handler is ConnPid,
%% as in Gun's connection process). gun_response goes to ReplyTo, then each
%% handler's init(ReplyTo, StreamRef, Status, Headers, Opts) ({ok, State}
%% or disable); each gun_data piece goes through handle(IsFin, Data, State)
%% down the chain ({ok, Data1, State} passes Data1 on, {done, State} or
%% {done, Flow, State} stops). gun_data_h is Gun's: it sends
%% {gun_data, ConnPid, StreamRef, IsFin, Data} to ReplyTo. Other messages
%% go to ReplyTo as they are. A crash in a handler ends the connection, as
%% in Gun.
chain(Msg, {'$chain', ReplyTo, conn}) ->
	%% The connection's chain for the protocol in use; none: the engine ran
	%% Gun's handlers and the messages pass on as they are.
	Chains = maps:get(chains, get('$gunmetal_static'), #{}),
	Proto = case gunmetal_nif:info(self()) of
		{ok, KV} -> case lists:keyfind(<<"protocol">>, 1, KV) of
			{_, <<"http2">>} -> http2;
			_ -> http
		end;
		_ -> http
	end,
	chain(Msg, {'$chain', ReplyTo, case Chains of
		#{Proto := CH} -> {init, CH};
		_ -> none
	end});
chain({gun_response, _, StreamRef, nofin, Status, Headers} = Msg, {'$chain', ReplyTo, {init, CH}}) ->
	reply(ReplyTo, Msg),
	{'$chain', ReplyTo, {run, handler_call(fun() ->
		chain_init(ReplyTo, StreamRef, Status, Headers, CH) end)}};
chain({gun_data, _, _, IsFin, Data}, {'$chain', ReplyTo, {run, Hs}}) ->
	{'$chain', ReplyTo, {run, handler_call(fun() -> chain_handle(IsFin, Data, Hs) end)}};
chain(Msg, Chain = {'$chain', ReplyTo, _}) ->
	reply(ReplyTo, Msg),
	Chain.

reply(Pid, Msg) when is_pid(Pid) -> Pid ! Msg;
reply(Fun, Msg) -> catch call_reply(Fun, Msg).


chain_init(_, _, _, _, []) ->
	[];
chain_init(ReplyTo, StreamRef, Status, Headers, [H|Tail]) ->
	{Mod, Opts} = case H of {_, _} -> H; _ -> {H, #{}} end,
	Res = case Mod of
		gun_data_h -> {ok, {ReplyTo, StreamRef}};
		_ -> Mod:init(ReplyTo, StreamRef, Status, Headers, Opts)
	end,
	case Res of
		{ok, St} -> [{Mod, St}|chain_init(ReplyTo, StreamRef, Status, Headers, Tail)];
		disable -> chain_init(ReplyTo, StreamRef, Status, Headers, Tail)
	end.

chain_handle(_, _, []) ->
	[];
chain_handle(IsFin, Data0, [{Mod, St0}|Tail]) ->
	Res = case Mod of
		gun_data_h ->
			{ReplyTo, StreamRef} = St0,
			reply(ReplyTo, {gun_data, self(), StreamRef, IsFin, Data0}),
			{done, 1, St0};
		_ -> Mod:handle(IsFin, Data0, St0)
	end,
	case Res of
		{ok, Data, St} -> [{Mod, St}|chain_handle(IsFin, Data, Tail)];
		{done, St} -> [{Mod, St}|Tail];
		{done, _Flow, St} -> [{Mod, St}|Tail]
	end.

%% The engine's connection goes with ConnPid when a handler crashes.
handler_call(F) ->
	try F()
	catch Class:Reason:Stack ->
		_ = gunmetal_nif:close(self()),
		erlang:raise(Class, Reason, Stack)
	end.

%% Gun's reply/2.
call_reply(Fun, Msg) when is_function(Fun, 1) -> Fun(Msg);
call_reply({Fun, A}, Msg) when is_function(Fun) -> apply(Fun, [Msg|A]);
call_reply({M, F, A}, Msg) -> apply(M, F, [Msg|A]).

%% Gun's event_handler, run here from the library's trace events: the
%% callback Name(EventMap, State) with gun_event's keys where gunmetal knows
%% them (no socket; lookup_info without tcp_opts; push_promise_end's
%% promised_stream_ref is undefined; a cancelled stream's later events have
%% stream_ref undefined), plus tls_version, cipher, alpn and resumed in
%% tls_handshake_end. A crash in the handler ends the connection, as in Gun.
run_event_handler(Name, StreamRef, ReplyTo, Status, Details, Headers, Data, S=#cp{ev={Mod, St0}}) ->
	Ev = event_map(Name, StreamRef, ReplyTo, Status, Details, Headers, Data, S),
	S#cp{ev={Mod, Mod:Name(Ev, St0)}};
run_event_handler(_, _, _, _, _, _, _, S) ->
	S.

event_map(Name, StreamRef, ReplyTo, Status, Details, Headers, Data, #cp{owner=Owner, static=St}) ->
	D0 = maps:from_list([{K, detail(K, V)} || {K, V} <- Details, is_atom(K)]),
	D1 = case D0 of
		#{ip_addresses := IPs} ->
			maps:remove(ip_addresses, D0#{lookup_info => #{ip_addresses => IPs,
				port => maps:get(port, D0, maps:get(origin_port, St)),
				tcp_module => gen_tcp, tcp_opts => []}});
		_ -> D0
	end,
	D2 = case D1 of
		#{host := _} -> D1#{host => maps:get(origin_host, St)};
		_ -> D1
	end,
	D = case Name of
		init -> D2#{owner => Owner, origin_host => maps:get(origin_host, St), opts => maps:get(opts, St)};
		connect_start -> maps:remove(port, D2);
		_ -> D2
	end,
	Stream = case lists:member(Name, [init, domain_lookup_start, domain_lookup_end, connect_start,
			connect_end, tls_handshake_start, tls_handshake_end, disconnect, terminate]) of
		true -> #{};
		false when Name =:= protocol_changed -> #{stream_ref => StreamRef};
		false -> #{stream_ref => StreamRef, reply_to => ReplyTo}
	end,
	Extra = case Name of
		request_start -> #{headers => Headers};
		request_headers -> #{headers => Headers};
		response_inform -> #{status => Status, headers => Headers};
		response_headers -> #{status => Status, headers => Headers};
		response_trailers -> #{headers => Headers};
		push_promise_end -> #{promised_stream_ref => undefined, headers => Headers};
		ws_upgrade -> #{opts => #{}};
		ws_recv_frame_end -> #{payload => Data};
		ws_send_frame_start -> #{frame => ws_frame(maps:get(type, D, text), Data)};
		ws_send_frame_end -> #{frame => ws_frame(maps:get(type, D, text), Data)};
		_ -> #{}
	end,
	maps:merge(maps:merge(maps:remove(promised_stream_ref, maps:without(
		case Name of ws_send_frame_start -> [type]; ws_send_frame_end -> [type]; _ -> [] end, D)),
		Stream), Extra).

ws_frame(close, <<>>) -> close;
ws_frame(close, <<Code:16, Reason/binary>>) -> {close, Code, Reason};
ws_frame(Type, Data) -> {Type, Data}.

%% A detail's value (a binary from the library) as gun_event gives it.
detail(K, V) when K =:= port; K =:= origin_port; K =:= len ->
	binary_to_integer(V);
detail(K, V) when K =:= timeout; K =:= close_code; K =:= mask_key ->
	case V of
		<<"infinity">> -> infinity;
		<<"undefined">> -> undefined;
		_ -> binary_to_integer(V)
	end;
detail(resumed, V) ->
	V =:= <<"true">>;
detail(alpn, <<"undefined">>) ->
	undefined;
detail(rsv, <<A, B, C>>) ->
	<<(A - $0):1, (B - $0):1, (C - $0):1>>;
detail(K, V) when K =:= transport; K =:= function; K =:= endpoint; K =:= protocol;
		K =:= type; K =:= state ->
	binary_to_atom(V);
detail(reason, V) ->
	trace_reason(V);
detail(error, V) ->
	{error, trace_reason(V)};
detail(frag_state, <<"undefined">>) ->
	undefined;
detail(frag_state, V) ->
	case binary:split(V, <<" ">>) of
		[IsFin, Type] -> {binary_to_atom(IsFin), binary_to_atom(Type)};
		_ -> V
	end;
detail(extensions, <<>>) ->
	#{};
detail(extensions, <<"permessage-deflate">>) ->
	#{deflate => true};
detail(ip_addresses, V) ->
	[IP || A <- binary:split(V, <<",">>, [global]),
		{ok, IP} <- [inet:parse_address(binary_to_list(A))]];
detail(_, V) ->
	V.

%% "closed", "normal", "shutdown", "cancel": atoms; "closed: econnreset"
%% or a sentence: {Atom, Detail} when the head is a plain word, else the
%% binary. Only existing atoms are made from what the library says.
trace_reason(V) ->
	case binary:split(V, <<": ">>) of
		[Word] -> existing_atom(Word);
		[Word, More] -> {existing_atom(Word), existing_atom(More)}
	end.

existing_atom(B) ->
	try binary_to_existing_atom(B) catch error:badarg -> B end.
