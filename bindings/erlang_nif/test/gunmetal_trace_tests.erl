%% EUnit: Gun's event_handler option on gunmetal (the library's trace
%% events, run by ConnPid). This module is also the event handler: each
%% callback sends {trace, Name, Event} to the pid in its state, as Gun's
%% event_SUITE does.
-module(gunmetal_trace_tests).
-include_lib("eunit/include/eunit.hrl").

-export([init/2, domain_lookup_start/2, domain_lookup_end/2, connect_start/2, connect_end/2,
	tls_handshake_start/2, tls_handshake_end/2, request_start/2, request_headers/2, request_end/2,
	push_promise_start/2, push_promise_end/2, response_start/2, response_inform/2,
	response_headers/2, response_trailers/2, response_end/2, ws_upgrade/2, ws_recv_frame_start/2,
	ws_recv_frame_header/2, ws_recv_frame_end/2, ws_send_frame_start/2, ws_send_frame_end/2,
	protocol_changed/2, origin_changed/2, cancel/2, disconnect/2, terminate/2]).

-define(CB(Name), Name(Ev, Pid) -> Pid ! {trace, Name, Ev}, Pid).
?CB(init).
?CB(domain_lookup_start).
?CB(domain_lookup_end).
?CB(connect_start).
?CB(connect_end).
?CB(tls_handshake_start).
?CB(tls_handshake_end).
?CB(request_start).
?CB(request_headers).
?CB(request_end).
?CB(push_promise_start).
?CB(push_promise_end).
?CB(response_start).
?CB(response_inform).
?CB(response_headers).
?CB(response_trailers).
?CB(response_end).
?CB(ws_upgrade).
?CB(ws_recv_frame_start).
?CB(ws_recv_frame_header).
?CB(ws_recv_frame_end).
?CB(ws_send_frame_start).
?CB(ws_send_frame_end).
?CB(protocol_changed).
?CB(origin_changed).
?CB(cancel).
?CB(disconnect).
?CB(terminate).

port() -> list_to_integer(os:getenv("GM_HTTP_PORT")).
tls_port() -> list_to_integer(os:getenv("GM_HTTPS_PORT")).
ca() -> os:getenv("GM_CA").

%% The trace events received until one named Until, in order.
events_until(Until) -> events_until(Until, []).
events_until(Until, Acc) ->
	receive
		{trace, Until, Ev} -> lists:reverse([{Until, Ev}|Acc]);
		{trace, Name, Ev} -> events_until(Until, [{Name, Ev}|Acc])
	after 5000 ->
		error({no_trace_event, Until, lists:reverse(Acc)})
	end.

names(Evs) -> [N || {N, _} <- Evs].

http1_request_test() ->
	Self = self(),
	Opts = #{event_handler => {?MODULE, self()}},
	{ok, C} = gunmetal:open("127.0.0.1", port(), Opts),
	{ok, http} = gunmetal:await_up(C),
	Conn = events_until(connect_end),
	?assertEqual([init, domain_lookup_start, domain_lookup_end, connect_start, connect_end], names(Conn)),
	Port = port(),
	#{owner := Self, transport := tcp, origin_scheme := <<"http">>, origin_host := "127.0.0.1",
		origin_port := Port, opts := Opts} = proplists:get_value(init, Conn),
	#{lookup_info := #{ip_addresses := [{127, 0, 0, 1}], port := Port}, timeout := infinity}
		= proplists:get_value(connect_start, Conn),
	#{protocol := http} = proplists:get_value(connect_end, Conn),
	R = gunmetal:get(C, "/bytes/10", [{<<"x-a">>, <<"1">>}]),
	{ok, <<"abcdefghij">>} = gunmetal:await_body(C, R),
	Req = events_until(response_end),
	?assertEqual([request_start, request_headers, request_end, response_start, response_headers,
		response_end], names(Req)),
	#{stream_ref := R, reply_to := Self, function := request, method := <<"GET">>,
		path := <<"/bytes/10">>, authority := _, headers := Hs} = proplists:get_value(request_start, Req),
	?assert(lists:member({<<"x-a">>, <<"1">>}, Hs)),
	#{stream_ref := R, reply_to := Self, status := 200, headers := [_|_]}
		= proplists:get_value(response_headers, Req),
	#{stream_ref := R, reply_to := Self} = proplists:get_value(response_end, Req),
	#{event_handler := ?MODULE, event_handler_state := Self} = gunmetal:info(C),
	ok = gunmetal:close(C).

tls_handshake_test() ->
	{ok, C} = gunmetal:open("localhost", tls_port(), #{transport => tls,
		%% reuse_sessions false: a full handshake, whatever the VM-wide
		%% session cache holds from earlier tests.
		tls_opts => [{verify, verify_peer}, {cacertfile, ca()}, {reuse_sessions, false}],
		event_handler => {?MODULE, self()}}),
	{ok, http2} = gunmetal:await_up(C),
	Evs = events_until(tls_handshake_end),
	?assertEqual([init, domain_lookup_start, domain_lookup_end, connect_start, connect_end,
		tls_handshake_start, tls_handshake_end], names(Evs)),
	#{protocol := http2, alpn := <<"h2">>, resumed := false, tls_version := <<"tlsv1.3">>}
		= proplists:get_value(tls_handshake_end, Evs),
	ok = gunmetal:close(C).

ws_test() ->
	case lists:member(ws, gunmetal:features()) of
		false -> error(ws_not_in_the_loaded_library);
		true -> ok
	end,
	{ok, C} = gunmetal:open("127.0.0.1", port(), #{event_handler => {?MODULE, self()}}),
	{ok, http} = gunmetal:await_up(C),
	_ = events_until(connect_end),
	R = gunmetal:ws_upgrade(C, "/ws"),
	{upgrade, [<<"websocket">>], _} = gunmetal:await(C, R),
	Up = events_until(protocol_changed),
	?assertEqual([ws_upgrade, request_start, request_headers, request_end, response_start,
		response_inform, protocol_changed], names(Up)),
	#{stream_ref := R, opts := #{}} = proplists:get_value(ws_upgrade, Up),
	#{function := ws_upgrade, method := <<"GET">>, path := <<"/ws">>} = proplists:get_value(request_start, Up),
	#{status := 101} = proplists:get_value(response_inform, Up),
	#{stream_ref := R, protocol := ws} = proplists:get_value(protocol_changed, Up),
	ok = gunmetal:ws_send(C, R, {text, <<"Hello!">>}),
	{ws, {text, <<"Hello!">>}} = gunmetal:await(C, R),
	Fr = events_until(ws_recv_frame_end),
	?assertEqual([ws_send_frame_start, ws_send_frame_end, ws_recv_frame_start, ws_recv_frame_header,
		ws_recv_frame_end], names(Fr)),
	#{stream_ref := R, frame := {text, <<"Hello!">>}, extensions := #{}}
		= proplists:get_value(ws_send_frame_start, Fr),
	#{frag_state := undefined, type := text, rsv := <<0:3>>, len := 6, mask_key := undefined}
		= proplists:get_value(ws_recv_frame_header, Fr),
	#{payload := <<"Hello!">>, close_code := undefined} = proplists:get_value(ws_recv_frame_end, Fr),
	ok = gunmetal:close(C).

cancel_test() ->
	{ok, C} = gunmetal:open("127.0.0.1", port(), #{event_handler => {?MODULE, self()}}),
	{ok, http} = gunmetal:await_up(C),
	R = gunmetal:get(C, "/slow?chunks=50&delay=100&size=5"),
	_ = events_until(request_end),
	ok = gunmetal:cancel(C, R),
	%% The stream is gone on our side when the event comes: no stream_ref.
	#{endpoint := local, reason := cancel} = proplists:get_value(cancel, events_until(cancel)),
	ok = gunmetal:close(C).

refused_test() ->
	?assertEqual({error, {options, {trace, true}}}, gunmetal:open("127.0.0.1", port(), #{trace => true})),
	{error, {options, {event_handler, _}}} =
		gunmetal:open("127.0.0.1", port(), #{event_handler => {no_such_module_here, x}}),
	{error, {options, {event_handler, _}}} =
		gunmetal:open("127.0.0.1", port(), #{event_handler => nope}),
	%% trace => false and no handler: no trace events at all.
	{ok, C} = gunmetal:open("127.0.0.1", port(), #{trace => false}),
	{ok, http} = gunmetal:await_up(C),
	R = gunmetal:get(C, "/bytes/3"),
	{ok, <<"abc">>} = gunmetal:await_body(C, R),
	receive {trace, _, _} = M -> error({unexpected, M}) after 100 -> ok end,
	ok = gunmetal:close(C).
