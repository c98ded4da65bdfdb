{#- xCAT's name resolution on a management node (seed: "Add the alias ip address
    into the /etc/resolv.conf as the nameserver ... hosts: files dns"). -#}
{%- set cfg = salt["hamn.config"]() %}
hamn-resolv-conf-nameserver-vip:
  file.prepend:
    - name: {{ cfg.xcat.resolv_conf }}
    - text: nameserver {{ cfg.vip.address }}
    - makedirs: True

hamn-nsswitch-hosts-files-dns:
  file.replace:
    - name: {{ cfg.xcat.nsswitch_conf }}
    - pattern: '^hosts:.*$'
    - repl: 'hosts:          files dns'
    - append_if_not_found: True
